package testenv

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
)

// Terminate ends the workflows ids that still run, with reason, 32 calls
// at a time, so a benchmark leaves nothing running on a server the next
// one shares. A workflow already closed (NotFound) is not an error; the
// other errors are returned joined, each with its workflow id.
func Terminate(c client.Client, reason string, ids []string) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	sem := make(chan struct{}, 32)
	for _, id := range ids {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			err := c.TerminateWorkflow(context.Background(), id, "", reason)
			var nf *serviceerror.NotFound
			if err == nil || errors.As(err, &nf) {
				return
			}
			mu.Lock()
			errs = append(errs, fmt.Errorf("terminate %s: %w", id, err))
			mu.Unlock()
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
