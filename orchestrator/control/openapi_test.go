package control

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"

	"opspilot/alerting"
	"opspilot/analyzer/online"
	"opspilot/api"
	"opspilot/autoscaler"
	"opspilot/orchestrator/pki"
	"opspilot/runbooks"
)

// The OpenAPI document (api/openapi.yaml) is written by hand; these tests
// hold it to the routes the control plane mounts, in both directions, so
// it cannot drift. They need no store: Routes and AgentRoutes only build
// handlers.

// servedByAPIServer are the documented /api/v1 operations that api.New
// mounts itself rather than the control plane.
var servedByAPIServer = []string{
	"GET /api/v1/status",
	"GET /api/v1/openapi.yaml",
	"GET /api/v1/openapi.json",
	// cmd/opspilot mounts the leader's status (orchestrator/leader).
	"GET /api/v1/leader",
}

// mountedRoutes is every route cmd/opspilot mounts from the control plane:
// the REST API, the agent protocol, the analyzer's API and (with the
// server's own PKI) the CA.
func mountedRoutes() []api.Route {
	c := &Controller{}
	rs := append(c.Routes(), c.AgentRoutes(nil)...)
	rs = append(rs, (&online.Service{}).Routes()...)
	rs = append(rs, (&autoscaler.Loop{}).Routes()...)
	rs = append(rs, (&alerting.Pipeline{}).Routes()...)
	rs = append(rs, (&alerting.Evaluator{}).Routes()...)
	rs = append(rs, (&runbooks.IncidentService{}).Routes()...)
	rs = append(rs, (&runbooks.SlackHandlers{}).Routes()...)
	rs = append(rs, (&runbooks.SlackApprover{}).Routes()...)
	return append(rs, api.Route{Pattern: "GET " + pki.CAPath, Name: "pki_ca"})
}

type openAPIDoc struct {
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		Parameters map[string]openAPIParam `json:"parameters"`
	} `json:"components"`
}

type openAPIParam struct {
	Ref      string `json:"$ref"`
	Name     string `json:"name"`
	In       string `json:"in"`
	Required bool   `json:"required"`
}

type openAPIOp struct {
	Description string            `json:"description"`
	Role        string            `json:"x-opspilot-role"`
	Security    *[]map[string]any `json:"security"`
	Parameters  []openAPIParam    `json:"parameters"`
	Responses   map[string]any    `json:"responses"`
}

var httpMethods = []string{"get", "put", "post", "delete", "patch", "head", "options", "trace"}

func loadOpenAPI(t *testing.T) (openAPIDoc, map[string]openAPIOp) {
	t.Helper()
	var doc openAPIDoc
	if err := json.Unmarshal(api.OpenAPIJSON(), &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	ops := map[string]openAPIOp{}
	for path, item := range doc.Paths {
		for key, raw := range item {
			if !slices.Contains(httpMethods, key) {
				continue
			}
			var op openAPIOp
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatalf("%s %s: %v", key, path, err)
			}
			ops[strings.ToUpper(key)+" "+path] = op
		}
	}
	return doc, ops
}

// wildcard matches a path segment wildcard of a ServeMux pattern:
// {name}, {name...} or {$}.
var wildcard = regexp.MustCompile(`\{([A-Za-z_][A-Za-z0-9_]*)?(\.\.\.)?(\$)?\}`)

// operationOf turns a ServeMux pattern into the document's "METHOD /path"
// (Go's {name} wildcards are OpenAPI's path templates).
func operationOf(t *testing.T, pattern string) string {
	t.Helper()
	method, path, ok := strings.Cut(pattern, " ")
	if !ok || !strings.HasPrefix(path, "/") {
		t.Fatalf("route %q has no method (or has a host): document it with one", pattern)
	}
	path = wildcard.ReplaceAllStringFunc(path, func(w string) string {
		m := wildcard.FindStringSubmatch(w)
		if m[3] != "" {
			return "" // {$}: the exact path
		}
		return "{" + m[1] + "}"
	})
	return method + " " + path
}

func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	doc, ops := loadOpenAPI(t)
	for _, r := range mountedRoutes() {
		op := operationOf(t, r.Pattern)
		t.Run(op, func(t *testing.T) {
			got, ok := ops[op]
			if !ok {
				t.Fatalf("route %s (%s) is not in api/openapi.yaml: document it", r.Pattern, r.Name)
			}
			role := r.Role
			if role == "" {
				role = "none"
			}
			if got.Role != role {
				t.Errorf("x-opspilot-role is %q, the route needs %q", got.Role, role)
			}
			if !strings.Contains(got.Description, "Role: "+role) {
				t.Errorf("the description does not say %q: %q", "Role: "+role, got.Description)
			}
			_, path, _ := strings.Cut(op, " ")
			for _, m := range wildcard.FindAllStringSubmatch(path, -1) {
				if !declaresPathParam(doc, path, got, m[1]) {
					t.Errorf("path parameter {%s} is not declared (in: path, required: true)", m[1])
				}
			}
		})
	}
}

// declaresPathParam reports whether name is declared as a required path
// parameter on the path item or the operation.
func declaresPathParam(doc openAPIDoc, path string, op openAPIOp, name string) bool {
	var params []openAPIParam
	if raw, ok := doc.Paths[path]["parameters"]; ok {
		_ = json.Unmarshal(raw, &params)
	}
	for _, p := range append(params, op.Parameters...) {
		if ref, ok := strings.CutPrefix(p.Ref, "#/components/parameters/"); ok {
			p = doc.Components.Parameters[ref]
		}
		if p.In == "path" && p.Name == name && p.Required {
			return true
		}
	}
	return false
}

func TestOpenAPIDocumentsOnlyRoutes(t *testing.T) {
	_, ops := loadOpenAPI(t)
	mounted := map[string]bool{}
	for _, r := range mountedRoutes() {
		mounted[operationOf(t, r.Pattern)] = true
	}
	for _, op := range servedByAPIServer {
		mounted[op] = true
	}
	for op := range ops {
		_, path, _ := strings.Cut(op, " ")
		if !strings.HasPrefix(path, "/api/v1/") && !strings.HasPrefix(path, "/agent/v1/") {
			continue
		}
		if !mounted[op] {
			t.Errorf("api/openapi.yaml documents %s, which no route serves: remove it or fix its path", op)
		}
	}
}

// TestOpenAPIOperationsAreConsistent checks what every operation must say,
// whoever mounts it.
func TestOpenAPIOperationsAreConsistent(t *testing.T) {
	_, ops := loadOpenAPI(t)
	for op, o := range ops {
		switch o.Role {
		case "none":
			// No API token: the operation overrides the document's bearer
			// security with none or the node token.
			if o.Security == nil || slices.ContainsFunc(*o.Security, func(s map[string]any) bool { _, ok := s["bearer"]; return ok }) {
				t.Errorf("%s: x-opspilot-role none, but it inherits or names the bearer (API token) security", op)
			}
		case api.RoleRead, api.RoleWrite, api.RoleAdmin:
			if o.Security != nil {
				t.Errorf("%s: needs an API token but overrides security", op)
			}
			if _, ok := o.Responses["401"]; !ok {
				t.Errorf("%s: needs an API token but documents no 401", op)
			}
			if o.Role != api.RoleRead {
				if _, ok := o.Responses["403"]; !ok {
					t.Errorf("%s: needs role %s but documents no 403", op, o.Role)
				}
				if !slices.ContainsFunc(o.Parameters, func(p openAPIParam) bool { return p.Ref == "#/components/parameters/Reason" }) {
					t.Errorf("%s: mutating, but does not document the X-Opspilot-Reason header", op)
				}
			}
		default:
			t.Errorf("%s: x-opspilot-role %q; want none, read, write or admin", op, o.Role)
		}
		if _, ok := o.Responses["200"]; !ok {
			t.Errorf("%s: no 200 response", op)
		}
	}

	// Every reference resolves.
	var whole any
	if err := json.Unmarshal(api.OpenAPIJSON(), &whole); err != nil {
		t.Fatal(err)
	}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok && resolve(whole, ref) == nil {
				t.Errorf("$ref %q does not resolve", ref)
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(whole)
}

// resolve follows a local JSON pointer reference ("#/a/b"), or returns nil.
func resolve(doc any, ref string) any {
	p, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil
	}
	cur := doc
	for _, part := range strings.Split(p, "/") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		part = strings.ReplaceAll(strings.ReplaceAll(part, "~1", "/"), "~0", "~")
		if cur, ok = m[part]; !ok {
			return nil
		}
	}
	return cur
}
