package txn_test

func childStress() error   { return nil }
func childBadInput() error { return nil }
