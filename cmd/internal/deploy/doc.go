// Package deploy holds only tests: they check the Dockerfile, docker-compose.yml
// and the documentation against the binaries they deploy and document (every
// variable compose sets is one the binary reads, every required one is set,
// the NATS server is durable, the cluster profile has three routed nodes,
// each binary links only what it runs: nats-server only eventmesh, the SQL
// drivers only the binaries with a store, test machinery none; and --help
// matches docs/configuration.md).
package deploy
