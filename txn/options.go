package txn

import (
	"io/fs"
	"log/slog"
)

// Durability says what a nil error from Commit promises.
type Durability int

const (
	// Full: when Commit returns nil the new pair survives a power loss. A
	// commit that replaces both files syncs the staged data, the commit
	// record and its directory before the point of no return, then the
	// metadata file and the data file's directory: five syncs, in that order.
	Full Durability = iota

	// NoSync issues no fsyncs. A commit is still all-or-nothing against a
	// crash of the process, but after a power loss the pair may be the old
	// one even though Commit returned nil (never a mixed pair, as long as the
	// filesystem keeps the order of its own metadata updates, as ext4 and xfs
	// do). For caches that can be fetched again.
	NoSync
)

func (d Durability) String() string {
	switch d {
	case Full:
		return "full"
	case NoSync:
		return "nosync"
	}
	return "Durability(?)"
}

// An Option configures Begin, Update, Read and View.
type Option interface{ apply(*config) }

type config struct {
	durability Durability
	perm       fs.FileMode
	logger     *slog.Logger
	hook       func(Step) error
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// WithDurability sets the durability of commits, and of the recovery that
// Begin, Read and View run. The default is Full.
func WithDurability(d Durability) Option { return optionFunc(func(c *config) { c.durability = d }) }

// WithPerm sets the permissions, before the umask, of files the transaction
// creates: the metadata file and the data file when they do not exist yet.
// Existing files keep their mode. The default is 0o644.
func WithPerm(perm fs.FileMode) Option {
	return optionFunc(func(c *config) { c.perm = perm & fs.ModePerm })
}

// WithLogger sets the logger for recovery events: a pending commit rolled
// forward, a torn record discarded, leftover staged files removed. The
// default discards them.
func WithLogger(l *slog.Logger) Option { return optionFunc(func(c *config) { c.logger = l }) }

// WithStepHook calls fn before each step of Commit and of recovery, with the
// step's name (see Steps). If fn returns an error, the step fails with it as
// if the filesystem had failed there, and the transaction handles it as it
// would a real failure. It exists for fault-injection and crash tests (a hook
// may also kill the process, or shut the filesystem down) and costs nothing
// when unset.
func WithStepHook(fn func(Step) error) Option { return optionFunc(func(c *config) { c.hook = fn }) }

func newConfig(opts []Option) config {
	c := config{durability: Full, perm: 0o644}
	for _, o := range opts {
		o.apply(&c)
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	return c
}

func (c *config) step(s Step) error {
	if c.hook == nil {
		return nil
	}
	return c.hook(s)
}
