package imapsrc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/cvfeed/cvfeed/mailpart"
	"github.com/cvfeed/cvfeed/state"
)

// readMessage reads the CV parts of one message into the spool and
// returns its claim. Only chosen parts cross the network: see fetchPart.
func (a *Account) readMessage(ctx context.Context, cn *conn, id state.MessageID, m meta, since time.Time) (state.MailClaim, error) {
	claim := state.MailClaim{MessageID: id}
	if why := a.filtered(m, since); why != "" {
		a.stats.Filtered.Add(1)
		a.log.Debug("message left out", "message", id.String(), "why", why)
		return claim, nil
	}
	if err := os.MkdirAll(a.o.SpoolDir, 0o700); err != nil {
		return claim, fmt.Errorf("spool: %w", err)
	}
	noBinary, err := a.store.NoBinary(id)
	if err != nil {
		return claim, err
	}
	r := &msgReader{a: a, cn: cn, id: id, m: m, seen: map[[32]byte]bool{}, noBinary: noBinary}
	if fails := a.failureCount(id); m.bs == nil || fails >= 2 {
		// No usable structure (or reading it in parts failed twice): the
		// whole message, parsed here.
		a.log.Info("reading the whole message", "message", id.String(), "why", wholeWhy(m.bs, fails))
		err = r.fetch(nil, false, func(body io.Reader) error {
			return mailpart.ParseMessage(body, a.policy, r.take)
		})
	} else {
		for _, ref := range mailpart.SelectParts(m.bs, a.policy) {
			if err = ctx.Err(); err != nil {
				break
			}
			switch {
			case ref.Skip != "":
				a.skip(id, ref, ref.Skip)
			case ref.NeedsParse:
				err = r.fetch(ref.Path, false, func(body io.Reader) error {
					return mailpart.ParsePart(ref, body, a.policy, r.take)
				})
			default:
				err = a.fetchPart(r, ref)
			}
			if err != nil {
				break
			}
		}
		if err == nil && len(r.parts) == 0 {
			err = r.findUUBlocks()
		}
	}
	if err != nil {
		return claim, err
	}
	claim.Parts = r.parts
	claim.Track = a.tracks()
	return claim, nil
}

func wholeWhy(bs imap.BodyStructure, fails int) string {
	switch {
	case fails >= 2:
		return fmt.Sprintf("reading it part by part failed %d times", fails)
	case bs == nil:
		return "the server gave no structure"
	}
	return "its structure could not be read"
}

func (a *Account) skip(id state.MessageID, ref mailpart.PartRef, why string) {
	a.stats.Skipped.Add(1)
	a.log.Info("part not taken", "message", id.String(), "part", ref.Section, "file", mailpart.SafeName(ref.Filename, nil), "why", why)
}

// maxUUScan is the largest text body searched for uuencoded files.
const maxUUScan = 4 << 20

// findUUBlocks names, at INFO, the uuencoded files in the text bodies of a
// message that gave no CV: a CV an old mailer put in the text itself is
// not taken, but it is seen. A server that refuses the fetch (NO) costs
// nothing more than the search.
func (r *msgReader) findUUBlocks() error {
	for _, ref := range mailpart.TextBodies(r.m.bs) {
		if ref.Size < 64 || ref.Size > maxUUScan {
			continue
		}
		err := r.fetch(ref.Path, false, func(body io.Reader) error {
			dec, err := mailpart.Decode(ref.Encoding, body)
			if err != nil {
				return nil
			}
			for _, name := range mailpart.FindUUBlocks(dec) {
				ref.Filename = name
				r.a.skip(r.id, ref, mailpart.SkipUUEncoded)
			}
			return nil
		})
		var ie *imap.Error
		if errors.As(err, &ie) {
			continue
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// msgReader reads the parts of one message.
type msgReader struct {
	a     *Account
	cn    *conn
	id    state.MessageID
	m     meta
	parts []state.Candidate
	seen  map[[32]byte]bool
	// noBinary: a BINARY fetch of this message failed once (noted in
	// state): its parts are read with BODY.PEEK and decoded here.
	noBinary bool
}

// Parts are judged on a small head before they are fetched whole: a
// non-CV attachment then costs headBytes, not its size. 4 KiB decide
// every type (mimetype reads 3 KiB) but zip and OLE2, whose Word markers
// may lie further: those get a second look at HeadSize. A part up to
// smallPart is fetched whole at once.
const (
	headBytes = 4 << 10
	smallPart = 8 << 10
)

// fetchPart judges a part on its head and, if it is taken, fetches and
// spools it. Under accept = ["all"] every non-empty part is taken: no head.
func (a *Account) fetchPart(r *msgReader, ref mailpart.PartRef) error {
	if a.policy.All || ref.Size <= smallPart {
		return r.fetch(ref.Path, r.binaryOK(ref), func(body io.Reader) error {
			return r.take(r.binaryRef(ref), body)
		})
	}
	var head []byte
	for _, n := range []int64{headBytes, mailpart.HeadSize} {
		var err error
		if head, err = r.head(ref, n); err != nil {
			return err
		}
		ok, why := a.policy.AcceptContent(ref, head)
		if ok {
			break
		}
		if mailpart.IsTNEF(head) {
			// A winmail.dat: fetched whole, its files taken (take).
			return r.fetch(ref.Path, r.binaryOK(ref), func(body io.Reader) error {
				return r.take(r.binaryRef(ref), body)
			})
		}
		if n == mailpart.HeadSize || !mailpart.NeedsLongerHead(head) || mailpart.EncodedLen(n, ref.Encoding) >= ref.Size {
			a.skip(r.id, ref, why)
			return nil
		}
	}
	return r.fetch(ref.Path, r.binaryOK(ref), func(body io.Reader) error {
		ref := r.binaryRef(ref)
		return r.spool(ref, ref.Encoding, body, head)
	})
}

// binaryOK says whether a part is fetched with BINARY (RFC 3516): the
// server undoes base64, and 1.37 bytes per byte of CV become 1. Not for
// a message whose BINARY fetch failed once (Dovecot disconnects on base64
// it cannot decode; BODY and the lenient decoder here read it), nor for
// one that broke the connection otherwise.
func (r *msgReader) binaryOK(ref mailpart.PartRef) bool {
	return mailpart.IsBase64(ref.Encoding) && r.cn.caps.Has(imap.CapBinary) && !r.noBinary && r.a.failureCount(r.id) == 0
}

func (r *msgReader) binaryRef(ref mailpart.PartRef) mailpart.PartRef {
	if r.binaryOK(ref) {
		ref.Encoding = "binary"
	}
	return ref
}

// head returns the first n decoded bytes of a part (fewer if it is
// shorter), fetched with BODY.PEEK[section]<0.size>.
func (r *msgReader) head(ref mailpart.PartRef, n int64) ([]byte, error) {
	var head []byte
	err := r.fetchSection(&imap.FetchItemBodySection{Part: ref.Path, Peek: true,
		Partial: &imap.SectionPartial{Offset: 0, Size: min(mailpart.EncodedLen(n, ref.Encoding), max(ref.Size, 1))}}, nil,
		func(body io.Reader) error {
			dec, err := mailpart.Decode(ref.Encoding, body)
			if err != nil {
				return err
			}
			head, err = io.ReadAll(io.LimitReader(dec, n))
			return err
		})
	return head, err
}

// fetch streams one section (nil: the whole message) to fn, with BINARY
// or BODY.PEEK.
func (r *msgReader) fetch(path []int, binary bool, fn func(io.Reader) error) error {
	if binary {
		return r.fetchSection(nil, &imap.FetchItemBinarySection{Part: path, Peek: true}, fn)
	}
	return r.fetchSection(&imap.FetchItemBodySection{Part: path, Peek: true}, nil, fn)
}

func (r *msgReader) fetchSection(body *imap.FetchItemBodySection, bin *imap.FetchItemBinarySection, fn func(io.Reader) error) error {
	opts := &imap.FetchOptions{UID: true}
	if body != nil {
		opts.BodySection = []*imap.FetchItemBodySection{body}
	} else {
		opts.BinarySection = []*imap.FetchItemBinarySection{bin}
	}
	r.cn.busy(true)
	defer r.cn.busy(false)
	cmd := r.cn.c.Fetch(imap.UIDSetNum(imap.UID(r.id.UID)), opts)
	var fnErr error
	called := false
	if msg := cmd.Next(); msg != nil {
		for item := msg.Next(); item != nil; item = msg.Next() {
			var lit imap.LiteralReader
			switch it := item.(type) {
			case imapclient.FetchItemDataBodySection:
				lit = it.Literal
			case imapclient.FetchItemDataBinarySection:
				lit = it.Literal
			default:
				continue
			}
			if called {
				continue
			}
			called = true
			if lit == nil {
				// NIL: the message was expunged by another client
				// meanwhile. Nothing to read, nothing lost.
				r.a.log.Info("part gone while reading it (message expunged by another client?)", "message", r.id.String())
				continue
			}
			src := &trapReader{r: lit}
			fnErr = fn(src)
			if src.err == nil {
				// Skip what fn left here, to see a truncation now.
				if _, err := io.Copy(io.Discard, src); err != nil && fnErr == nil {
					fnErr = err
				}
			}
			if src.err != nil {
				// The connection broke inside the literal. go-imap would
				// read the literal again to skip it, racing with its
				// reader goroutine: drop the connection, not the command.
				r.cn.c.Close()
				err := fmt.Errorf("fetch %s: %w", r.id, src.err)
				if bin != nil {
					return r.binaryFailed(bin, err)
				}
				return err
			}
		}
	}
	err := cmd.Close()
	var ie *imap.Error
	switch {
	case err != nil && bin != nil && errors.As(err, &ie):
		// The server cannot decode this part (UNKNOWN-CTE): read it raw.
		if err := r.binaryFailed(bin, err); err != nil {
			return err
		}
		return r.fetchSection(&imap.FetchItemBodySection{Part: bin.Part, Peek: true}, nil, fn)
	case err != nil && bin != nil && r.cn.c.State() == imap.ConnStateLogout:
		return r.binaryFailed(bin, fmt.Errorf("fetch %s: %w", r.id, err))
	case err != nil:
		return fmt.Errorf("fetch %s: %w", r.id, err)
	case fnErr != nil:
		return fnErr
	case !called:
		// Expunged meanwhile: nothing to read, nothing lost.
		r.a.log.Debug("message gone while reading it", "message", r.id.String())
	}
	return nil
}

// binaryFailed notes in state that the message is read without BINARY
// from now on. On a connection still open it returns nil (the caller
// reads the part with BODY.PEEK now); on a lost one a *retryNowError.
func (r *msgReader) binaryFailed(bin *imap.FetchItemBinarySection, cause error) error {
	r.noBinary = true
	if err := r.a.store.SetNoBinary(r.id); err != nil {
		return err
	}
	section := sectionString(bin.Part)
	if r.cn.c.State() != imap.ConnStateLogout {
		r.a.log.Info("the server cannot decode a part (BINARY refused): reading it encoded and decoding it here",
			"message", r.id.String(), "part", section, "err", cause)
		return nil
	}
	r.a.log.Info("the server dropped the connection on a BINARY fetch (its base64 is likely malformed): reconnecting at once to read it encoded and decode it here",
		"message", r.id.String(), "part", section)
	return &retryNowError{err: cause}
}

func sectionString(path []int) string {
	s := ""
	for i, n := range path {
		if i > 0 {
			s += "."
		}
		s += strconv.Itoa(n)
	}
	return s
}

// trapReader reads a literal and remembers a read error. A connection
// that ends inside a literal shows as an early EOF from go-imap: it is
// io.ErrUnexpectedEOF here, or a truncated part would be spooled.
type trapReader struct {
	r    imap.LiteralReader
	read int64
	err  error
}

func (t *trapReader) Read(p []byte) (int, error) {
	if t.err != nil {
		return 0, t.err
	}
	n, err := t.r.Read(p)
	t.read += int64(n)
	if err == io.EOF && t.read < t.r.Size() {
		err = io.ErrUnexpectedEOF
	}
	if err != nil && err != io.EOF {
		t.err = err
	}
	return n, err
}

// take judges a part on the first bytes of its stream, then spools it:
// the visit function of ParseMessage and ParsePart, and the fetch of a
// part without head.
func (r *msgReader) take(ref mailpart.PartRef, body io.Reader) error {
	if ref.Skip != "" {
		r.a.skip(r.id, ref, ref.Skip)
		return nil
	}
	dec, err := mailpart.Decode(ref.Encoding, body)
	if err != nil {
		r.a.skip(r.id, ref, err.Error())
		return nil
	}
	br := bufio.NewReaderSize(dec, mailpart.HeadSize)
	head, err := br.Peek(mailpart.HeadSize)
	if err != nil && err != io.EOF && err != bufio.ErrBufferFull {
		if errors.Is(err, mailpart.ErrTooLarge) {
			r.a.skip(r.id, ref, mailpart.SkipTooBig)
			return nil
		}
		return err
	}
	if mailpart.IsTNEF(head) {
		return r.unpackTNEF(ref, br)
	}
	if ok, why := r.a.policy.AcceptContent(ref, head); !ok {
		r.a.skip(r.id, ref, why)
		return nil
	}
	return r.spool(ref, "binary", br, head)
}

// unpackTNEF takes the files inside a TNEF container (winmail.dat) by the
// same rules as any part; the container itself is never uploaded. A
// damaged container is a problem of that part only: what was found before
// the damage is taken, the rest is logged.
func (r *msgReader) unpackTNEF(ref mailpart.PartRef, body io.Reader) error {
	if ref.InTNEF {
		r.a.skip(r.id, ref, "TNEF container inside a TNEF container")
		return nil
	}
	n, err := mailpart.UnpackTNEF(ref, body, r.a.o.SpoolDir, r.a.policy.MaxSize, r.take)
	switch {
	case errors.Is(err, mailpart.ErrTooLarge):
		r.a.skip(r.id, ref, mailpart.SkipTooBig)
	case errors.Is(err, mailpart.ErrBadTNEF):
		r.a.skip(r.id, ref, fmt.Sprintf("damaged TNEF container (%v): %d file(s) before the damage read", err, n))
	case err != nil:
		return err
	case n == 0:
		r.a.log.Info("TNEF container holds no file (only the message's rich text)", "message", r.id.String(),
			"part", ref.Section, "file", mailpart.SafeName(ref.Filename, nil))
	default:
		r.a.log.Debug("TNEF container unpacked", "message", r.id.String(), "part", ref.Section, "files", n)
	}
	return nil
}

// spool writes a taken part, whose transfer encoding enc is still to be
// undone, to the spool and adds it to the claim.
func (r *msgReader) spool(ref mailpart.PartRef, enc string, body io.Reader, head []byte) error {
	a := r.a
	path, sha, size, err := mailpart.Spool(a.o.SpoolDir, enc, body, a.policy.MaxSize)
	switch {
	case errors.Is(err, mailpart.ErrTooLarge):
		a.skip(r.id, ref, mailpart.SkipTooBig)
		return nil
	case errors.Is(err, mailpart.ErrUnsupportedEncoding):
		a.skip(r.id, ref, err.Error())
		return nil
	case err != nil:
		return err
	case size == 0:
		a.skip(r.id, ref, mailpart.SkipEmpty)
		return nil
	}
	a.stats.PartBytes.Add(size)
	if r.seen[sha] {
		return nil // the same file twice in one message
	}
	r.seen[sha] = true
	r.parts = append(r.parts, state.Candidate{
		Source:   a.cfg.Name,
		SourceID: a.cfg.SourceID,
		SHA256:   sha,
		Path:     path,
		Origin:   r.id.String() + "/" + ref.Section,
		FileName: mailpart.SafeName(ref.Filename, head),
		Size:     size,
		Received: received(r.m),
	})
	return nil
}
