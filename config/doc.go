// Package config loads and validates opspilot's YAML files (opspilot.yaml
// and the spec files that follow it) and reports every problem with the file
// name, line, column and dotted field path, so that a person can fix all of
// them in one pass.
//
// Parse walks the document produced by go.yaml.in/yaml/v3 alongside the Go
// destination struct. It decodes nothing itself: every value is decoded by
// yaml.v3 (node.Decode), and this package only tracks where each value came
// from. On top of yaml.v3 it adds strictness: unknown fields (with a "did you
// mean" suggestion), duplicate keys, values of the wrong kind and files with
// more than one document are errors. After a clean decode it calls the
// destination's Validate method, if any, and places each Problem at the
// position of the field it names.
//
// Semantics worth knowing:
//   - The destination holds defaults before Parse is called. Keys absent from
//     the file and keys set to null keep those defaults.
//   - A list in the file replaces the default list. A map in the file is
//     merged into the default map (yaml.v3 behaves the same way).
//   - Field paths use YAML key names: "tsdb.embedded.retention",
//     "server.auth.tokens[1].role". Map keys that are not plain names are
//     quoted: labels["app.kubernetes.io/name"].
//
// Dependencies: this package may import only the standard library and
// go.yaml.in/yaml/v3. It must not import any other opspilot package; every
// other package may import it, which keeps it at the bottom of the
// dependency graph.
package config
