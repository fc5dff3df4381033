package collector

// go-elasticsearch ships logs through the bulk API (DESIGN.md's verified
// version); the import keeps go.mod's pin until the log shipper uses it.
import _ "github.com/elastic/go-elasticsearch/v8"
