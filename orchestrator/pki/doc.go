// Package pki owns the control plane's own certificate authority and the
// credentials a node agent uses to join it, in the style of k3s and
// kubeadm: `opspilot server` creates a CA on first start and prints a join
// token; `opspilot agent --server https://HOST:9440 --join-token T` uses the
// token to trust that CA without a pre-shared CA file.
//
// On the server, EnsureCA keeps DATA_DIR/pki (mode 0700) up to date:
//
//	ca.crt, ca.key          ECDSA P-256 CA, 10 years, CN "opspilot CA"
//	server.crt, server.key  TLS certificate signed by it, 1 year
//	peer.crt, peer.key      with WithPeerCert: the embedded etcd member's
//	                        peer certificate (server and client auth), 1 year
//	join-secret             the random secret half of the join token
//	join-token              the whole token, for the operator to copy
//
// Keys and secrets are written atomically with mode 0600. The server and
// peer certificates are reissued (the CA is kept) when they lack a
// requested name or expire within 30 days. Replicas of an HA control plane
// share ca.crt and ca.key, so their etcd members trust each other's peer
// certificates and nobody else's. Deleting ca.crt and ca.key makes a new CA,
// which every joined agent must re-join to trust; deleting server.*,
// peer.* or join-secret is harmless to joined agents.
//
// The join token is K10<hex SHA-256 of the CA's DER>::<secret>. The agent
// fetches the CA from CAPath over an unverified connection, accepts it only
// if its hash matches the token and the same connection's server
// certificate chains to it, and verifies every later connection against
// it. The secret then authenticates the join; a joined node gets its own
// bearer token (NewNodeToken), of which the server stores only a hash.
//
// Dependencies: the standard library only. It must not import other
// opspilot packages: the API server and the agent import it.
package pki
