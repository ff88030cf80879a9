package txn_test

func childBadInput() error { return nil }
