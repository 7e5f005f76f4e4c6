package watcher

import (
	"context"
	"crypto/sha256"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/cvfeed/cvfeed/config"
	"github.com/cvfeed/cvfeed/state"
)

// Store is what the folder sources need of the state database.
type Store interface {
	LookupFile(sourceID, path string) (state.FileRecord, bool, error)
	Claim([]state.Candidate) ([]state.ClaimResult, error)
}

// handover turns complete files into claims: it skips a file whose identity
// state remembers, hashes any other once, and claims in batches.
type handover struct {
	store Store
	log   *slog.Logger
	stats *Stats
	// open, when set, replaces the confined open of a file to hash
	// (tests count and fail opens).
	open func(string) (*os.File, error)
	// batch and flush bound a claim transaction: the number of files and
	// the time the first waits.
	batch int
	flush time.Duration
	skips skipLog
}

// file is a regular file found by a walk, an event or a poll.
type file struct {
	folder *config.Folder
	abs    string
	rel    string
	info   fs.FileInfo
	// looked says state was already asked for info's identity and does
	// not know it (a scan looks up a directory's files at once).
	looked bool
}

// outcome is what examine did with a file.
type outcome uint8

const (
	hashed    outcome = iota // read: a candidate to claim
	unchanged                // identity known: not read
	changing                 // changed while read: try again once stable
	dropped                  // unreadable or empty: logged
)

// batchLookup is implemented by stores that look up many files in one read
// transaction. A walk then costs one transaction per directory rather than
// one per file, which is most of a restart's time over a large tree.
type batchLookup interface {
	LookupFiles(sourceID string, paths []string, found func(i int, r state.FileRecord)) error
}

// unknown returns the files of batch that state does not remember with
// their current identity (reusing batch's array).
func (h *handover) unknown(f *config.Folder, batch []found) []found {
	if len(batch) == 0 {
		return batch
	}
	bl, ok := h.store.(batchLookup)
	if !ok {
		out := batch[:0]
		for _, fl := range batch {
			if h.knownID(f, fl.abs, fl.identity()) {
				h.stats.Unchanged.Add(1)
			} else {
				out = append(out, fl)
			}
		}
		return out
	}
	paths := make([]string, len(batch))
	for i := range batch {
		paths[i] = batch[i].abs
	}
	known := make([]bool, len(batch))
	err := bl.LookupFiles(f.SourceID, paths, func(i int, r state.FileRecord) {
		known[i] = r.Identity == batch[i].identity()
	})
	out := batch[:0]
	for i, fl := range batch {
		if err == nil && known[i] {
			h.stats.Unchanged.Add(1)
		} else {
			out = append(out, fl)
		}
	}
	return out
}

// known reports whether state remembers the file with this identity, so
// that it need not be read.
func (h *handover) known(f *config.Folder, abs string, fi fs.FileInfo) bool {
	return h.knownID(f, abs, identityOf(fi))
}

func (h *handover) knownID(f *config.Folder, abs string, id state.Identity) bool {
	rec, ok, err := h.store.LookupFile(f.SourceID, abs)
	return err == nil && ok && rec.Identity == id
}

// examine skips a file whose identity is known, else reads it once,
// checks it did not change meanwhile, and makes its candidate.
func (h *handover) examine(f file, buf []byte) (state.Candidate, outcome) {
	if !f.looked && h.known(f.folder, f.abs, f.info) {
		h.stats.Unchanged.Add(1)
		return state.Candidate{}, unchanged
	}
	fh, err := h.openFile(f)
	if err != nil {
		h.unreadable(f, err)
		return state.Candidate{}, dropped
	}
	defer fh.Close()
	before, err := fh.Stat()
	if err != nil {
		h.unreadable(f, err)
		return state.Candidate{}, dropped
	}
	sum := sha256.New()
	// Hide (*os.File).WriteTo, which would ignore buf and allocate a
	// new one for every file.
	n, err := io.CopyBuffer(sum, struct{ io.Reader }{fh}, buf)
	if err != nil {
		h.unreadable(f, err)
		return state.Candidate{}, dropped
	}
	h.stats.Bytes.Add(n)
	after, err := fh.Stat()
	if err != nil {
		h.unreadable(f, err)
		return state.Candidate{}, dropped
	}
	if n != before.Size() || !after.ModTime().Equal(before.ModTime()) || after.Size() != before.Size() {
		h.stats.Changing.Add(1)
		h.log.Warn("file changed while it was read; it will be taken once it is stable", "source", f.folder.Name, "file", f.abs)
		return state.Candidate{}, changing
	}
	if n == 0 {
		h.skip(f, SkipEmpty)
		return state.Candidate{}, dropped
	}
	id := identityOf(before)
	c := state.Candidate{
		Source: f.folder.Name, SourceID: f.folder.SourceID, Path: f.abs, FileName: filepath.Base(f.abs),
		// No Received: the upload dates a folder file by its
		// modification time when it sends it (uploader.reception),
		// so the item need not store it.
		Size: n, Identity: &id,
		// The file is moved, deleted or sent to failed_dir once its
		// item is settled (see package fileaction).
		Action: f.folder.AfterUpload != config.AfterKeep || f.folder.FailedDir != "",
	}
	sum.Sum(c.SHA256[:0])
	return c, hashed
}

// openFile opens a file to hash inside its folder (package confine: only
// the links follow_symlinks allows are followed).
func (h *handover) openFile(f file) (*os.File, error) {
	if h.open != nil {
		return h.open(f.abs)
	}
	return folderTree(f.folder).Open(f.abs)
}

// claim writes candidates in batches, one transaction per batch, until
// cands is closed or ctx is done. It returns only a state error or ctx's.
func (h *handover) claim(ctx context.Context, cands <-chan state.Candidate) error {
	batch := make([]state.Candidate, 0, h.batch)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		res, err := h.store.Claim(batch)
		if err != nil {
			return err
		}
		for i, r := range res {
			c := &batch[i]
			switch r {
			case state.ClaimNew:
				h.stats.New.Add(1)
				h.log.Debug("new CV queued", "source", c.Source, "file", c.Path)
			case state.ClaimDuplicate:
				h.stats.Duplicates.Add(1)
				h.log.Info("duplicate: same content as a CV already taken, not sent again", "source", c.Source, "file", c.Path)
			case state.ClaimKnown:
				h.stats.Known.Add(1)
			}
		}
		batch = batch[:0]
		return nil
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case c, ok := <-cands:
			if !ok {
				return flush()
			}
			if len(batch) == 0 {
				timer.Reset(h.flush)
			}
			batch = append(batch, c)
			if len(batch) >= h.batch {
				timer.Stop()
				if err := flush(); err != nil {
					return err
				}
			}
		case <-timer.C:
			if err := flush(); err != nil {
				return err
			}
		case <-ctx.Done():
			// What was hashed is still worth keeping.
			_ = flush()
			return ctx.Err()
		}
	}
}

func (h *handover) unreadable(f file, err error) {
	h.stats.Errors.Add(1)
	h.log.Error("cannot read file; skipped", "source", f.folder.Name, "file", f.abs, "err", err)
}

// skip counts a file not taken and logs it, once per file and reason.
func (h *handover) skip(f file, why Skip) {
	h.stats.Skipped.Add(1)
	if h.skips.add(f.abs, why) {
		h.log.Info("skipped", "source", f.folder.Name, "file", f.abs, "reason", string(why))
	}
}

// identityOf is what makes a file "the same" for a rescan.
func identityOf(fi fs.FileInfo) state.Identity {
	id := state.Identity{Size: fi.Size(), MTime: fi.ModTime().UnixNano()}
	if k, ok := devInoOf(fi); ok {
		id.Dev, id.Ino = k[0], k[1]
	}
	return id
}
