package config

import "time"

// Values of api.flavor and folder after_upload.
const (
	flavorRiminder = FlavorRiminder
	flavorHrFlow   = FlavorHrFlow

	afterKeep   = AfterKeep
	afterMove   = AfterMove
	afterDelete = AfterDelete
)

// Default returns the configuration used for every key the file leaves
// out. It has no folder and no mailbox; the defaults of a [[folder]] or
// [[mailbox]] are applied to each one the file declares. API.URL is empty because the file must set it.
func Default() Config {
	return Config{
		StateDir:        "var",
		ShutdownTimeout: 30 * time.Second,
		API: API{
			Flavor:       flavorRiminder,
			Workers:      4,
			RateLimit:    0,
			MaxAttempts:  10,
			Timeout:      2 * time.Minute,
			RetryInitial: time.Second,
			RetryMax:     5 * time.Minute,
		},
	}
}

// defaultFolder returns the defaults of one [[folder]].
func defaultFolder() Folder {
	return Folder{
		Recursive:      true,
		PollInterval:   0,
		Settle:         2 * time.Second,
		Watch:          WatchAuto,
		RescanInterval: 5 * time.Minute,
		ForgetMissing:  72 * time.Hour,
		AfterUpload:    afterKeep,
		Include:        DefaultInclude(),
		MaxSize:        100 << 20,
		FollowSymlinks: FollowInside,
	}
}

// defaultMailbox returns the defaults of one [[mailbox]].
func defaultMailbox() Mailbox {
	return Mailbox{
		Security:          SecurityTLS,
		Folders:           []string{"INBOX"},
		AfterUpload:       MailNone,
		NoCVAction:        MailNone,
		Accept:            AcceptCV,
		MaxAttachmentSize: 25 << 20,
		PollInterval:      time.Minute,
	}
}
