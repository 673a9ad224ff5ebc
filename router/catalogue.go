package router

import "strings"

// RelationshipEventPrefix starts the dynamic namespace
// consumption.relationshipEvent.<relationshipId>.
const RelationshipEventPrefix = "consumption.relationshipEvent."

// Catalogue lists the namespaces of every Connector event we know: those of
// Connector 7.x and the legacy names of earlier versions (renamed or
// removed), so events of an old Connector are labelled too.
var Catalogue = []string{
	// transport.*
	"transport.messageReceived",
	"transport.messageSent",
	"transport.messageDelivered",
	"transport.messageWasReadAtChanged",
	"transport.relationshipChanged",
	"transport.relationshipReactivationRequested",
	"transport.relationshipReactivationCompleted",
	"transport.relationshipDecomposedBySelf",
	"transport.peerToBeDeleted",
	"transport.peerDeletionCancelled",
	"transport.peerDeleted",
	"transport.peerRelationshipTemplateLoaded",
	"transport.relationshipTemplateAllocationsExhausted",
	"transport.fileOwnershipLocked",
	"transport.fileOwnershipClaimed",
	"transport.identityDeletionProcessStatusChanged",
	"transport.datawalletSynchronized",
	// consumption.*
	"consumption.incomingRequestReceived",
	"consumption.incomingRequestStatusChanged",
	"consumption.outgoingRequestCreated",
	"consumption.outgoingRequestStatusChanged",
	"consumption.outgoingRequestCreatedAndCompleted",
	"consumption.outgoingRequestFromRelationshipCreationCreatedAndCompleted",
	"consumption.messageProcessed",
	"consumption.relationshipTemplateProcessed",
	"consumption.attributeCreated",
	"consumption.attributeDeleted",
	"consumption.attributeSucceeded",
	"consumption.attributeForwardingDetailsChanged",
	"consumption.attributeWasViewedAtChanged",
	"consumption.ownAttributeDeletedByOwner",
	"consumption.peerRelationshipAttributeDeletedByPeer",
	"consumption.forwardedAttributeDeletedByPeer",
	"consumption.shareCredentialOfferRequestItemProcessedByRecipient",
	"consumption.mailReceived",
	// runtime.* (lifecycle, no data)
	"runtime.initializing",
	"runtime.initialized",
	"runtime.modulesLoaded",
	"runtime.modulesInitialized",
	"runtime.modulesStarted",
	// Legacy names (Connector < 7).
	"consumption.outgoingRequestFromRelationshipCreationChangeCreatedAndCompleted",
	"consumption.repositoryAttributeSucceeded",
	"consumption.ownSharedAttributeSucceeded",
	"consumption.peerSharedAttributeSucceeded",
	"consumption.thirdPartyRelationshipAttributeSucceeded",
	"consumption.thirdPartyOwnedRelationshipAttributeSucceeded",
	"consumption.ownSharedAttributeDeletedByOwner",
	"consumption.peerSharedAttributeDeletedByPeer",
	"consumption.thirdPartyRelationshipAttributeDeletedByPeer",
	"consumption.thirdPartyOwnedRelationshipAttributeDeletedByPeer",
	"consumption.sharedAttributeCopyCreated",
	"consumption.attributeListenerCreated",
	"consumption.attributeListenerTriggered",
	"consumption.requestReceived",
	"consumption.requestMailReceived",
	"transport.initialized",
}

var known = func() map[string]bool {
	m := make(map[string]bool, len(Catalogue))
	for _, ns := range Catalogue {
		m[ns] = true
	}
	return m
}()

// Label values for namespaces outside the catalogue.
const (
	LabelRelationshipEvent = "consumption.relationshipEvent"
	LabelOther             = "other"
)

// MetricLabel returns a bounded metric label for a namespace: the namespace
// itself when it is in the catalogue, LabelRelationshipEvent for the dynamic
// consumption.relationshipEvent.<id>, and LabelOther for anything else, so
// data can never grow a metric's cardinality.
func MetricLabel(namespace string) string {
	if known[namespace] {
		return namespace
	}
	if strings.HasPrefix(namespace, RelationshipEventPrefix) {
		return LabelRelationshipEvent
	}
	return LabelOther
}
