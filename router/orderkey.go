package router

import "encoding/json"

// OrderKey returns the key whose events must be delivered in order
// (WEBHOOK_ORDER=per-key): the peer the event concerns, read from the DTO
// shapes of the Connector's events — a RelationshipDTO's, a
// LocalRequestDTO's or a LocalAttributeDTO's peer, a status change's
// request.peer, a MessageDTO's other party (its creator, or its first
// recipient when it is our own), the same inside messageProcessed's
// message. relationshipDecomposedBySelf carries only a relationship id,
// which becomes the key. Events that name no peer return "" (no ordering
// constraint).
func OrderKey(data []byte) string {
	if noData(data) {
		return ""
	}
	type message struct {
		IsOwn      bool   `json:"isOwn"`
		CreatedBy  string `json:"createdBy"`
		Recipients []struct {
			Address string `json:"address"`
		} `json:"recipients"`
	}
	var v struct {
		message
		Peer    string `json:"peer"`
		Request *struct {
			Peer string `json:"peer"`
		} `json:"request"`
		Message        *message `json:"message"`
		RelationshipID string   `json:"relationshipId"`
	}
	if json.Unmarshal(data, &v) != nil {
		return ""
	}
	other := func(m message) string {
		if m.IsOwn {
			if len(m.Recipients) > 0 {
				return m.Recipients[0].Address
			}
			return ""
		}
		return m.CreatedBy
	}
	switch {
	case v.Peer != "":
		return v.Peer
	case v.Request != nil && v.Request.Peer != "":
		return v.Request.Peer
	case v.Message != nil:
		return other(*v.Message)
	case v.CreatedBy != "":
		return other(v.message)
	case v.RelationshipID != "":
		return "relationship:" + v.RelationshipID
	}
	return ""
}
