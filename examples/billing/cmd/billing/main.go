// Command billing is the demo payment service (see examples/billing).
// Build it static for a container image:
//
//	CGO_ENABLED=0 go build -o billing ./examples/billing/cmd/billing
package main

import (
	"os"

	"opspilot/examples/billing"
)

func main() { os.Exit(billing.Main(os.Args[1:])) }
