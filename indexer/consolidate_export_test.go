package indexer

// SpaceFiles returns how many sstables hold only keys of the key space
// named by its first byte ('t' the time ordering, 'r' the records).
func (s *Store) SpaceFiles(space byte) (int, error) {
	levels, err := s.db.SSTables()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, l := range levels {
		for _, t := range l {
			if len(t.Smallest.UserKey) > 0 && t.Smallest.UserKey[0] == space && t.Largest.UserKey[0] == space {
				n++
			}
		}
	}
	return n, nil
}
