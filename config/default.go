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

// The defaults other packages fall back on for a zero value in their
// options (a loaded config never holds one; tests and callers that build
// options by hand may): defined here once, used by Default too.
const (
	DefaultWorkers        = 4
	DefaultMaxAttempts    = 10
	DefaultTimeout        = 2 * time.Minute
	DefaultRetryInitial   = time.Second
	DefaultRetryMax       = 5 * time.Minute
	DefaultRescanInterval = 5 * time.Minute
	// DefaultPoll is the poll period of a folder polled without a
	// poll_interval (watch = "poll", a network file system, a fallback).
	DefaultPoll = 10 * time.Second
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
			Workers:      DefaultWorkers,
			RateLimit:    0,
			MaxAttempts:  DefaultMaxAttempts,
			Timeout:      DefaultTimeout,
			RetryInitial: DefaultRetryInitial,
			RetryMax:     DefaultRetryMax,
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
		RescanInterval: DefaultRescanInterval,
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
