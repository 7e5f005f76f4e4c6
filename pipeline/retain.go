package pipeline

import (
	"context"
	"log/slog"
	"time"

	"github.com/cvfeed/cvfeed/config"
	"github.com/cvfeed/cvfeed/state"
)

// retainEvery is how often the daemon forgets the uploaded items older
// than state.keep_uploaded (they are also forgotten at each start).
const retainEvery = time.Hour

// forgetUploaded drops the uploaded items older than cfg.State.KeepUploaded
// (nothing when it is 0: for ever). That stays exactly-once: a file
// claimed again is sent with the same profile_reference, which the API
// refuses, and cvfeed confirms the profile the API holds. An error is
// logged; the state stays as it was and the next sweep tries again.
func forgetUploaded(store *state.Store, cfg *config.Config, now time.Time, log *slog.Logger) {
	keep := cfg.State.KeepUploaded
	if keep <= 0 {
		return
	}
	start := time.Now()
	st, err := store.ForgetUploaded(now.Add(-keep))
	if err != nil {
		log.Error("cannot forget the uploaded items older than state.keep_uploaded", "keep_uploaded", keep, "err", err)
		return
	}
	level := slog.LevelDebug
	if st.Forgotten > 0 {
		level = slog.LevelInfo
	}
	log.Log(context.Background(), level, "forgot uploaded items older than state.keep_uploaded", "forgotten", st.Forgotten, "checked", st.Checked,
		"keep_uploaded", keep, "took", time.Since(start).Round(time.Millisecond))
}
