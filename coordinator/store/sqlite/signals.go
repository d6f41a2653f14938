package sqlite

// The signals table: transient events for one device, numbered from the log's revisions.

import (
	"context"
	"errors"
	"time"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

func (t *tx) AppendSignal(ctx context.Context, e store.Event) (int64, error) {
	if e.TargetDeviceID == "" {
		return 0, errors.New("append signal: no target device")
	}
	return t.appendTo(ctx, "append signal", "signals", e)
}

// PruneSignals leaves pruned_revision alone: losing an old signal loses nothing a stream must
// resynchronize for.
func (t *tx) PruneSignals(ctx context.Context, before time.Time) (int64, error) {
	return t.execCount(ctx, "prune signals", `DELETE FROM signals WHERE created_at < ?`, fmtTime(before))
}
