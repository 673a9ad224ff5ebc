package harness

import (
	"fmt"
	"strings"

	"github.com/eventmesh/eventmesh/router"
)

// Event is one event as a Connector's webhook posts it: the body
// {"trigger": Trigger, "data": Data}.
type Event struct {
	Trigger string
	Data    []byte // JSON
}

// Body returns the request body the Connector sends.
func (e Event) Body() []byte {
	b := make([]byte, 0, len(e.Data)+len(e.Trigger)+24)
	b = append(b, `{"trigger":"`...)
	b = append(b, e.Trigger...)
	b = append(b, `","data":`...)
	b = append(b, e.Data...)
	return append(b, '}')
}

// ID returns the ce-id ingest gives the event when it is posted to
// /events of a producer with the default CONNECTOR_ID.
func (e Event) ID() string {
	id, err := router.EventID(router.DefaultSource, e.Trigger, e.Data)
	if err != nil {
		panic(fmt.Sprintf("harness: event id of %s: %v", e.Trigger, err))
	}
	return id
}

// MessageReceived returns a transport.messageReceived event of about 1 KB
// (a MessageDTO carrying a Mail) whose message id is made of run and i, so
// events of one run are distinct and runs do not collide. pad adds that
// many bytes to the mail's body (for a bigger event).
func MessageReceived(run string, i, pad int) Event {
	data := fmt.Sprintf(`{"id":"MSG%s%08d","isOwn":false,"content":{"@type":"Mail","to":["did:e:bb.example.org:dids:9a1c0e5f7b2d4c6a8e0f12"],`+
		`"subject":"Invoice %d","body":"Dear customer, please find attached invoice %d. %s","bodyFormat":"PlainText"},`+
		`"createdBy":"did:e:bb.example.org:dids:4be2f1d0c9a8b7e6d5c4b3","createdByDevice":"DVCh2Lk9PqR7sT1uV3wX",`+
		`"recipients":[{"address":"did:e:bb.example.org:dids:9a1c0e5f7b2d4c6a8e0f12","receivedAt":"2026-03-01T10:15:02.431Z",`+
		`"receivedByDevice":"DVCa1B2c3D4e5F6g7H8i","relationshipId":"RELm4N5o6P7q8R9s0T1u"}],`+
		`"createdAt":"2026-03-01T10:15:00.120Z","attachments":["FILz9Y8x7W6v5U4t3S2r"]}`,
		run, i, i, i, strings.Repeat("x", 380+max(pad, 0)))
	return Event{Trigger: "transport.messageReceived", Data: []byte(data)}
}
