// Package alerting holds rule files: `opspilot up --demo` loads
// BillingRules, and every server PlatformRules.
package alerting

import _ "embed"

// BillingRules is billing.rules.yaml: the demo billing service's alerting
// and recording rules.
//
//go:embed billing.rules.yaml
var BillingRules []byte

// PlatformRules is platform.rules.yaml: opspilot's own alerts (datacenter
// lost, degraded, failed over).
//
//go:embed platform.rules.yaml
var PlatformRules []byte
