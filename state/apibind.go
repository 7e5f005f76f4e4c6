package state

import (
	"errors"
	"fmt"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// An upload counts for the API it went to: a state whose items were sent
// to the sandbox says "uploaded" and "unchanged" of CVs the real API never
// saw. So the meta bucket records which API the state's uploads go to (an
// identity the caller makes of the flavour and base URL: "FLAVOUR URL", or
// "FLAVOUR sandbox" for the embedded sandbox, see cmd/cvfeed), and a writer
// that means to upload checks it with BindAPI first.

var keyAPI = []byte("api")

// ErrOtherAPI is matched (errors.Is) by the *APIMismatchError of BindAPI.
var ErrOtherAPI = errors.New("state belongs to another API")

// APIMismatchError is BindAPI's refusal: the state holds items uploaded to
// Bound, and the caller's API is Want.
type APIMismatchError struct {
	Path, Bound, Want string
}

func (e *APIMismatchError) Error() string {
	if rebindable(e.Bound, e.Want) != nil {
		return fmt.Sprintf("state %s records uploads to the API %q, but the config points at %q: "+
			"they are not the same API, so to upload to that API use a new state_dir", e.Path, e.Bound, e.Want)
	}
	return fmt.Sprintf("state %s records uploads to the API %q, but the config points at %q: "+
		"to upload to that API, use a new state_dir; if it is the same API under a new address, run \"cvfeed state rebind\"",
		e.Path, e.Bound, e.Want)
}

// Is makes errors.Is(err, ErrOtherAPI) true.
func (e *APIMismatchError) Is(target error) bool { return target == ErrOtherAPI }

// Binding is what BindAPI did.
type Binding struct {
	// Previous is the API recorded before ("" when none).
	Previous string
	// Changed is set when api was recorded now.
	Changed bool
	// Empty is set when the state held no item (a state with no items
	// binds to whatever API runs it).
	Empty bool
}

// BoundAPI returns the API recorded in the state ("" when none).
func (s *Store) BoundAPI() (string, error) {
	var api string
	err := s.view(func(tx *bolt.Tx) error {
		api = string(tx.Bucket(bucketMeta).Get(keyAPI))
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("read the state's API: %w", err)
	}
	return api, nil
}

// BindAPI makes sure the state belongs to api before anything is uploaded
// with it. A state with no API recorded (new, or written by a cvfeed that
// did not record it), and a state with no items, are bound to api; a state
// with items uploaded to another API is refused with an
// *APIMismatchError.
func (s *Store) BindAPI(api string) (Binding, error) {
	var b Binding
	err := s.update(func(tx *bolt.Tx) error {
		var err error
		if b, err = s.binding(tx, api); err != nil || !b.Changed {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keyAPI, []byte(api))
	})
	if err != nil {
		var me *APIMismatchError
		if errors.As(err, &me) || errors.Is(err, ErrDamaged) {
			return b, err
		}
		return b, fmt.Errorf("record the state's API: %w", err)
	}
	return b, nil
}

// CheckAPI says what BindAPI would (nil, or an *APIMismatchError) and
// records nothing: for a dry run.
func (s *Store) CheckAPI(api string) error {
	return s.view(func(tx *bolt.Tx) error {
		_, err := s.binding(tx, api)
		return err
	})
}

// binding decides BindAPI: Changed when api is to be recorded.
func (s *Store) binding(tx *bolt.Tx, api string) (Binding, error) {
	b := Binding{Previous: string(tx.Bucket(bucketMeta).Get(keyAPI))}
	if b.Previous == api {
		return b, nil
	}
	k, _ := tx.Bucket(bucketItems).Cursor().First()
	f, _ := tx.Bucket(bucketIdents).Cursor().First()
	b.Empty = k == nil && f == nil
	if b.Previous != "" && !b.Empty {
		return b, &APIMismatchError{Path: s.path, Bound: b.Previous, Want: api}
	}
	b.Changed = true
	return b, nil
}

// RebindAPI records api as the state's API and returns the one recorded
// before: the admin says the new address is the same API. It refuses
// (ErrOtherAPI) when the two cannot be one API (see rebindable).
func (s *Store) RebindAPI(api string) (previous string, err error) {
	err = s.update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		previous = string(meta.Get(keyAPI))
		if previous != "" && previous != api {
			if err := rebindable(previous, api); err != nil {
				return err
			}
		}
		return meta.Put(keyAPI, []byte(api))
	})
	if err != nil {
		if errors.Is(err, ErrDamaged) || errors.Is(err, ErrOtherAPI) {
			return "", err
		}
		return "", fmt.Errorf("record the state's API: %w", err)
	}
	return previous, nil
}

// rebindable refuses to take previous and next for one API under two
// addresses when they cannot be: the embedded sandbox (its uploads went to
// no real API) and another flavour (another API altogether).
func rebindable(previous, next string) error {
	pf, pu, _ := strings.Cut(previous, " ")
	nf, nu, _ := strings.Cut(next, " ")
	switch {
	case pu == "sandbox" || nu == "sandbox":
		return fmt.Errorf("%w: the state records %q and the config %q: the embedded sandbox is not the same API as any other, so its uploads cannot count for it; use a new state_dir", ErrOtherAPI, previous, next)
	case pf != nf:
		return fmt.Errorf("%w: the state records %q and the config %q: another flavour is another API; use a new state_dir", ErrOtherAPI, previous, next)
	}
	return nil
}
