package connector

import "time"

// Hooks for the tests of package connector_test, which are outside the
// package (they use connectortest, which imports connector).

// MaxExcerpt is maxExcerpt, the longest body excerpt in an Error.
const MaxExcerpt = maxExcerpt

// SetBackoff sets c's first backoff, so retries do not slow the tests down.
func SetBackoff(c *Client, d time.Duration) { c.backoff = d }
