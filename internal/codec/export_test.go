package codec

import "time"

// SetReloadInterval changes how often an unknown key id triggers a reload,
// for the duration of a test.
func SetReloadInterval(d time.Duration) (restore func()) {
	old := reloadInterval
	reloadInterval = d
	return func() { reloadInterval = old }
}
