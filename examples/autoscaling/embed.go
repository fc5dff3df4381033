// Package autoscaling holds example AutoscalingPolicy files; `opspilot up
// --demo` applies Billing.
package autoscaling

import _ "embed"

// Billing is billing.yaml: the demo billing service's policy.
//
//go:embed billing.yaml
var Billing []byte
