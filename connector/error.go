package connector

import (
	"errors"
	"fmt"
	"net/http"
)

// Error codes the Connector answers with. The generic ones are listed in
// the spec's ErrorContent schema (openapi.yml, components.schemas.
// ErrorContent.properties.error.properties.code); the others come from the
// Connector's and Runtime's sources, as noted on each.
const (
	// CodeUnauthorized: no or a wrong API key (401). Spec: ErrorContent
	// "error.connector.unauthorized"; the Connector's HttpErrors.unauthorized.
	CodeUnauthorized = "error.connector.unauthorized"
	// CodeRecordNotFound: no object with that id (404). The spec's generic
	// list names error.connector.recordNotFound, but the object routes
	// answer with the Runtime's error (the Connector's genericErrorHandler
	// maps RuntimeErrors.general.recordNotFound to 404), so this is what a
	// real Connector sends for GET /Messages/{id} and friends.
	CodeRecordNotFound = "error.runtime.recordNotFound"
	// CodeRouteDoesNotExist: no such route (404); the Connector's
	// HttpErrors.routeDoesNotExist.
	CodeRouteDoesNotExist = "error.connector.http.routeDoesNotExist"
	// CodeMethodNotAllowed: the route exists, the method does not (405);
	// the Connector's HttpErrors.methodNotAllowed.
	CodeMethodNotAllowed = "error.connector.http.methodNotAllowed"
	// CodeInvalidPropertyValue: an id of the wrong format or an unknown
	// query filter (400). The Runtime's request validation error; the
	// spec lists the Connector's own variant,
	// error.connector.validation.invalidPropertyValue.
	CodeInvalidPropertyValue = "error.runtime.validation.invalidPropertyValue"
	// CodeWrongRelationshipStatus: accepting a relationship that is not
	// Pending (400). Not in the spec (which gives only "400 BadRequest" for
	// PUT /Relationships/{id}/Accept); taken from the transport library's
	// RelationshipsController.accept, which asserts the Pending status
	// first.
	CodeWrongRelationshipStatus = "error.transport.relationships.wrongRelationshipStatus"
	// CodeOperationOnlyAllowedForPeer: accepting a pending relationship
	// you created yourself (400): only the peer can accept it. Not in the
	// spec; from the same accept method, which checks that the last
	// audit-log entry was created by the peer.
	CodeOperationOnlyAllowedForPeer = "error.transport.relationships.operationOnlyAllowedForPeer"
	// CodeUnavailable: the answer of connectortest's double while
	// SetDown(true) (503). Our choice: a real Connector that is down does
	// not answer at all, and a proxy in front of it answers 503 in its own
	// format.
	CodeUnavailable = "error.connector.unavailable"
)

// ErrUnavailable is wrapped by every error of a request that got no answer:
// no connection, a connection lost before the reply, a timeout.
var ErrUnavailable = errors.New("connector unavailable")

// Error is an error answer of the Connector: the fields of its envelope
// {"error": {"id", "code", "message", "docs", "time"}} and the HTTP status.
// An answer that is not an envelope (a proxy's HTML page, say) gives an
// Error with Status and, in Message, an excerpt of the body.
type Error struct {
	// Status is the HTTP status code.
	Status int
	// ID identifies this error instance in the Connector's log ("ERR…").
	ID string
	// Code is the error code, e.g. CodeUnauthorized; empty when the body
	// was not an envelope.
	Code string
	// Message says what went wrong (not localized).
	Message string
	// Docs links to the code's documentation.
	Docs string
	// Time is when the error occurred (ISO 8601).
	Time string
}

// Error returns the status, code and message.
func (e *Error) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("connector answered %d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
	}
	return fmt.Sprintf("connector answered %d %s: %s", e.Status, e.Code, e.Message)
}

// IsAuth reports whether the Connector refused the API key (401) or the
// key's rights (403). Retrying does not help; a person must fix the key.
func IsAuth(err error) bool {
	var e *Error
	return errors.As(err, &e) && (e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden)
}

// IsNotFound reports whether the Connector does not know the object (404).
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == http.StatusNotFound
}

// IsUnavailable reports whether the Connector could not do the request for
// now: it answered 5xx, 408, 425 or 429 (it, or a gateway in front of it,
// asks to come back later), or there was no answer (no connection,
// connection lost, timeout). Worth trying again later. After an unanswered
// AcceptRelationship the acceptance may well have happened: read the
// relationship before accepting again.
func IsUnavailable(err error) bool {
	if errors.Is(err, ErrUnavailable) {
		return true
	}
	var e *Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.Status {
	case http.StatusRequestTimeout, http.StatusTooEarly, http.StatusTooManyRequests:
		return true
	}
	return e.Status >= 500
}

// HasCode reports whether err is an Error with the given code.
func HasCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}
