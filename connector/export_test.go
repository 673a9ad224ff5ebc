package connector

import "time"

// Hooks for the tests of package connector_test, which are outside the
// package (they use connectortest, which imports connector).

// MaxExcerpt is maxExcerpt, the longest body excerpt in an Error.
const MaxExcerpt = maxExcerpt

// SetBackoff sets c's first backoff, so retries do not slow the tests down.
func SetBackoff(c *Client, d time.Duration) { c.backoff = d }

// SetMaxBody sets c's bound of a whole answer and of a listed object
// (maxBody), so a test need not send 64 MiB to pass it.
func SetMaxBody(c *Client, n int64) { c.maxBody = n }
