package main

import (
	"fmt"
	"net/url"

	"github.com/spf13/cobra"

	"opspilot/orchestrator/model"
)

// newFailoverCmd is `opspilot failover DC` and newFailbackCmd `opspilot
// failback DC`: the planned counterparts of what the control plane does
// by itself when a datacenter is lost and returns.
func newFailoverCmd() *cobra.Command {
	return datacenterCmd("failover", "Take a datacenter out of service: its services run in the other datacenters until failback",
		`  opspilot failover B --reason "network maintenance 02:00-04:00"`,
		"failed over: its services' instances are rebuilt in the other datacenters and its own stop once replaced; `opspilot failback %s` returns it")
}

func newFailbackCmd() *cobra.Command {
	return datacenterCmd("failback", "Return a failed-over datacenter to service; services move their share back gradually",
		`  opspilot failback B --reason "maintenance done"`,
		"back in service: services move their share back gradually (watch with `opspilot get instances`); `opspilot failover %s` takes it out again")
}

func datacenterCmd(verb, short, example, done string) *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:     verb + " DATACENTER",
		Short:   short,
		Example: example,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			var st model.DatacenterStatus
			if err := c.do(cmd.Context(), "POST", "/api/v1/datacenters/"+url.PathEscape(args[0])+"/"+verb, nil, &st); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "datacenter/%s %s\n", args[0], fmt.Sprintf(done, args[0]))
			return nil
		},
	}
	f.register(cmd)
	f.registerReason(cmd)
	return cmd
}
