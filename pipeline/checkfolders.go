package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/cvfeed/cvfeed/config"
	"github.com/cvfeed/cvfeed/state"
	"github.com/cvfeed/cvfeed/watcher"
)

// folderChecks is how cvfeed check tells whether a folder is down: the
// look at its root, compared with the device state recorded. When a
// running cvfeed holds the state, its /healthz (with [http] listen) says
// instead whether the folder is on the device it should be.
type folderChecks struct {
	devs  watcher.DeviceStore // nil: devices not compared here
	close func()
	// daemon holds the folder reasons of the running cvfeed's /healthz,
	// by folder name, when it was asked.
	daemon map[string]string
	// note says why devices are not compared, for the OK lines.
	note string
}

func newFolderChecks(ctx context.Context, cfg *config.Config) *folderChecks {
	fc := &folderChecks{close: func() {}}
	path := StatePath(cfg)
	if _, err := os.Stat(path); err != nil {
		return fc // no state yet: nothing recorded to compare with
	}
	st, err := state.Open(path, &state.Options{ReadOnly: true, LockTimeout: 200 * time.Millisecond})
	switch {
	case err == nil:
		fc.devs, fc.close = st, func() { st.Close() }
	case errors.Is(err, state.ErrLocked):
		fc.note = "device not compared: a running cvfeed holds the state (its /healthz says)"
		if cfg.HTTP.Listen != "" {
			if reasons, err := daemonFolderReasons(ctx, cfg.HTTP.Listen); err == nil {
				fc.daemon, fc.note = reasons, ""
			}
		}
	default:
		fc.note = "device not compared: " + err.Error()
	}
	return fc
}

// check returns why f is down ("/srv/hr/cvs is missing"), or "".
func (fc *folderChecks) check(f config.Folder) string {
	err := watcher.CheckFolder(fc.devs, f)
	var down *watcher.DownError
	switch {
	case errors.As(err, &down):
		return down.Reason()
	case err != nil:
		return err.Error()
	}
	return fc.daemon[f.Name]
}

// daemonFolderReasons asks the running cvfeed's /healthz which folders
// are down: its reasons "folder NAME: WHY", as WHY by NAME.
func daemonFolderReasons(ctx context.Context, listen string) (map[string]string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, err
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(host, port)+"/healthz", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Status  string   `json:"status"`
		Reasons []string `json:"reasons"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, r := range body.Reasons {
		if rest, ok := strings.CutPrefix(r, "folder "); ok {
			if name, why, ok := strings.Cut(rest, ": "); ok {
				out[name] = why
			}
		}
	}
	return out, nil
}
