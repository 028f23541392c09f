//go:build integration

package bench

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	enumspb "go.temporal.io/api/enums/v1"
)

// shapeVar, when set, makes the storm and its floor pass log the shape of
// their workflows' histories after the measurement (logHistoryShape): how
// many signals, workflow tasks and markers an incident took.
const shapeVar = "IRU_BENCH_SHAPE"

// logHistoryShape logs the history events of the workflows ids per
// workflow, in all and by type (averaged over them). A workflow whose
// history cannot be read is logged and left out.
func (r *rig) logHistoryShape(tb testing.TB, what string, ids []string) {
	tb.Helper()
	counts := map[string]int{}
	total, read := 0, 0
	for _, id := range ids {
		it := r.Client.GetWorkflowHistory(context.Background(), id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		n, byType := 0, map[string]int{}
		var err error
		for it.HasNext() {
			e, nerr := it.Next()
			if nerr != nil {
				err = nerr
				break
			}
			byType[strings.TrimPrefix(e.GetEventType().String(), "EVENT_TYPE_")]++
			n++
		}
		if err != nil {
			tb.Logf("history of %s: %v", id, err)
			continue
		}
		read++
		total += n
		for k, v := range byType {
			counts[k] += v
		}
	}
	if read == 0 {
		return
	}
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		fmt.Fprintf(&b, " %s=%.2f", k, float64(counts[k])/float64(read))
	}
	tb.Logf("history per workflow (%s, %d read): events=%.2f%s", what, read, float64(total)/float64(read), b.String())
}
