// Package admin holds what an operator does to a running mesh, as
// functions the eventmesh admin commands and the operator console both
// call: the status report of ENMESHED and its durables (Status), and the
// dead letters in ENMESHED_DLQ (ListDeadLetters, GetDeadLetter,
// SelectDeadLetters, ReplayDeadLetters, PurgeDeadLetters), a replay being
// checked first with RequireDurables. Pausing and resuming a durable and
// listing the durables are consumers.PauseConsumer,
// consumers.ResumeConsumer and consumers.Durables (the consumer runtime
// pauses itself too); archive replay is archiver.Select and
// archiver.Replay. Nothing here prints: callers render the results.
package admin
