package bridge

// ErrNegativeConfirm is errNegativeConfirm, for the AMQP tests.
var ErrNegativeConfirm = errNegativeConfirm
