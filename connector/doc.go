// Package connector talks to an enmeshed Connector's REST API: a small
// client for the routes the mesh needs (sync, messages, relationships,
// incoming requests, accepting a relationship) with typed DTO subsets that
// keep the Connector's JSON untouched. Package connectortest beside it
// holds a test double of the Connector, for tests and `eventmesh demo`.
//
// The Connector's API is described by its OpenAPI spec (nmshd/connector,
// src/modules/coreHttpApi/openapi.yml, AGPL): this package was written by
// hand from reading it, nothing is generated or copied.
package connector
