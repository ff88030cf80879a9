package txn

// Step names one step of Commit or of recovery, for WithStepHook. The hook
// runs before the step, so a crash in the hook leaves the files as they are
// between the previous step and this one.
type Step string

// The steps of Commit, in order. A commit that replaces only the data file
// skips the record steps; one that replaces nothing has no steps.
const (
	// StepSyncData: the staged data file is complete; next it is synced
	// (Full only, and only when the commit replaces the data).
	StepSyncData Step = "commit.sync-data"
	// StepWriteRecord: next the commit record (new metadata, the staged
	// file's name and identity) is written.
	StepWriteRecord Step = "commit.write-record"
	// StepSyncRecord: next the record and the metadata directory are
	// synced (Full only). The record is not yet durable, so a crash here
	// leaves the old pair.
	StepSyncRecord Step = "commit.sync-record"
	// StepRenameData: the record is durable (the point of no return); next
	// the staged file is renamed over the data file.
	StepRenameData Step = "commit.rename-data"
	// StepWriteMeta: next the metadata file is rewritten in place.
	StepWriteMeta Step = "commit.write-meta"
	// StepSyncApplied: next the data file's directory and the metadata
	// file are synced (Full only).
	StepSyncApplied Step = "commit.sync-applied"
	// StepRemoveRecord: the new pair is in place; next the record is removed.
	StepRemoveRecord Step = "commit.remove-record"
	// StepRelease: the commit is complete; next the lock is released.
	StepRelease Step = "commit.release"
)

// The steps of recovery, which Begin, Read and View run under the exclusive
// lock when they find a commit record: one left by a crash, or the intent of
// a transaction that crashed while staging. A record is rolled forward
// (sync-record, rename-data, write-meta, sync-applied, remove-temps,
// remove-record) or, if
// it never became a commit, discarded (remove-temps, discard-record). Staged
// files go before the record, so a crash in between leaves the record to find
// them again.
const (
	// StepRecoverSyncRecord: a valid record was found; next it, its
	// directory and the staged file it names are synced (Full only), since
	// the commit that wrote them may have died before it could.
	StepRecoverSyncRecord Step = "recover.sync-record"
	// StepRecoverRenameData: next the staged file named by a valid record is
	// renamed over the data file.
	StepRecoverRenameData Step = "recover.rename-data"
	// StepRecoverWriteMeta: next the record's metadata is written in place.
	StepRecoverWriteMeta Step = "recover.write-meta"
	// StepRecoverSyncApplied: next the data directory and the metadata file
	// are synced (Full only).
	StepRecoverSyncApplied Step = "recover.sync-applied"
	// StepRecoverRemoveTemps: next the staged files of transactions that
	// never committed are removed.
	StepRecoverRemoveTemps Step = "recover.remove-temps"
	// StepRecoverRemoveRecord: the pair is the new one; next the record is
	// removed.
	StepRecoverRemoveRecord Step = "recover.remove-record"
	// StepRecoverDiscard: the record is an intent, is torn, or its staged
	// data never reached the data file; next it is removed, leaving the
	// old pair.
	StepRecoverDiscard Step = "recover.discard-record"
)

// Steps returns every step of Commit and then of recovery, in the order they
// run (a recovery either removes its record or discards it: the last two
// steps are alternatives).
func Steps() []Step {
	return []Step{
		StepSyncData, StepWriteRecord, StepSyncRecord, StepRenameData, StepWriteMeta,
		StepSyncApplied, StepRemoveRecord, StepRelease,
		StepRecoverSyncRecord, StepRecoverRenameData, StepRecoverWriteMeta, StepRecoverSyncApplied,
		StepRecoverRemoveTemps, StepRecoverRemoveRecord, StepRecoverDiscard,
	}
}
