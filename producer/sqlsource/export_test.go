package sqlsource

// SetHooks installs test hooks: afterPublish runs after each acknowledged
// publish, beforeSettle before a round settles (an error abandons the
// round as a crash would), afterSettle after a settle with the number of
// rows archived. They may run concurrently. Set them before Run.
func SetHooks(s *Source, afterPublish func(id int64), beforeSettle func() error, afterSettle func(archived int)) {
	s.afterPublish, s.beforeSettle, s.afterSettle = afterPublish, beforeSettle, afterSettle
}

// ClaimOwner returns the claim_owner the source writes.
func ClaimOwner(s *Source) string { return s.owner }
