package state

import bolt "go.etcd.io/bbolt"

// bbolt keeps the list of its free pages in memory. With NoFreelistSync
// (Open's option) it does not write that list at each commit, which saves a
// page write or more per transaction, and rebuilds it when a writer opens
// the file, by walking and checking every page of every bucket: over a
// million files that took seconds and made the whole file resident at every
// start.
//
// A clean Close of a store that wrote therefore writes the list once (a
// store opened on a recorded list that wrote nothing leaves it, as Open's
// check of a current schema does not write): one last commit with
// NoFreelistSync off records it in the file, and the next writer's Open
// reads it from there instead of walking the file. The first commit after
// that frees the written list's pages and goes back to not syncing (bbolt's
// Tx.Commit does both), so a process killed later leaves a file whose meta
// page says "no free list": the walk then runs once, as before, and nothing
// is lost either way (a free list is only where bbolt may write next).

// syncFreelist records the free list in the file (see above). A failure is
// harmless: the next Open rebuilds the list.
func (s *Store) syncFreelist() {
	db := s.db
	db.NoFreelistSync = false
	err := s.guard(func() error { return db.Update(func(*bolt.Tx) error { return nil }) })
	db.NoFreelistSync = true
	_ = err
}
