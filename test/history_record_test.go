//go:build integration

package test

import (
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/encoding/protojson"
)

// historyFromIterator reads a workflow's whole history as the JSON that
// testdata/histories holds and TestReplayRecordedHistories replays.
func historyFromIterator(it client.HistoryEventIterator) ([]byte, error) {
	var h historypb.History
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return nil, err
		}
		h.Events = append(h.Events, e)
	}
	return protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(&h)
}
