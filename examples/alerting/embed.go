// Package alerting holds example rule files; `opspilot up --demo` loads
// BillingRules.
package alerting

import _ "embed"

// BillingRules is billing.rules.yaml: the demo billing service's alerting
// and recording rules.
//
//go:embed billing.rules.yaml
var BillingRules []byte
