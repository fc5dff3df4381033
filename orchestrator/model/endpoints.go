package model

// Endpoint is one ready instance a gateway may send requests to.
type Endpoint struct {
	Instance   string `json:"instance"`
	Node       string `json:"node"`
	Datacenter string `json:"datacenter"`
	Version    string `json:"version,omitempty"`
	// Address is HOST:PORT of the service's first declared port.
	Address string `json:"address"`
	// Ports maps every declared port (by name, or by number when unnamed)
	// to HOST:PORT.
	Ports map[string]string `json:"ports,omitempty"`
}

// EndpointSet is the answer of GET /api/v1/endpoints: the ready instances
// of every service at a revision. Clients long-poll with
// ?wait=REVISION&timeout=30s and get an answer as soon as Revision is
// greater (or when the timeout passes, with the same revision).
type EndpointSet struct {
	Revision int64                 `json:"revision"`
	Services map[string][]Endpoint `json:"services"`
}

// Gateway is a running `opspilot gateway`, registered with the server so
// that `opspilot loadgen` and people can find it.
type Gateway struct {
	Name       string `json:"name"`
	URL        string `json:"url"`
	Datacenter string `json:"datacenter,omitempty"`
}
