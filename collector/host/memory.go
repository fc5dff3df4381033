package host

import (
	"bytes"
	"fmt"
	"strings"
	"time"
)

// collectMeminfo reports every /proc/meminfo field as node_memory_<Field>,
// named like node_exporter: "Active(anon)" becomes Active_anon, fields in
// kB are converted to bytes and get the _bytes suffix, unitless counts
// (HugePages_Total) keep their bare name.
func (c *Collector) collectMeminfo(time.Time) error {
	data, err := c.readFile(c.procFile("meminfo"))
	if err != nil {
		return err
	}
	clear(c.seen)
	for n := 1; len(data) > 0; n++ {
		var line []byte
		line, data = nextLine(data)
		c.fields = splitFields(c.fields, line)
		if len(c.fields) == 0 {
			continue // some kernels emit blank lines
		}
		key, ok := bytes.CutSuffix(c.fields[0], []byte(":"))
		if !ok || len(key) == 0 || len(c.fields) < 2 || len(c.fields) > 3 {
			return fmt.Errorf("line %d: want \"Key: value [kB]\", got %q", n, truncate(line))
		}
		v, err := parseInt(c.fields[1])
		if err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
		inKB := len(c.fields) == 3
		if inKB {
			if string(c.fields[2]) != "kB" {
				return fmt.Errorf("line %d: unit %q, want kB", n, truncate(c.fields[2]))
			}
			v *= 1024
		}
		name, err := c.meminfoName(key, inKB)
		if err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
		if _, dup := c.seen[name]; dup {
			return fmt.Errorf("line %d: field %q appears twice", n, truncate(key))
		}
		c.seen[name] = struct{}{}
		c.b.add(name, v)
	}
	return nil
}

func (c *Collector) meminfoName(key []byte, inKB bool) (string, error) {
	cache := c.memNames
	if inKB {
		cache = c.memBytes
	}
	if name, ok := cache[string(key)]; ok {
		return name, nil
	}
	k := string(key)
	// node_exporter's `\((.*)\)` → `_$1`: Active(anon) → Active_anon.
	if i := strings.IndexByte(k, '('); i >= 0 {
		if j := strings.LastIndexByte(k, ')'); j > i {
			k = k[:i] + "_" + k[i+1:j] + k[j+1:]
		}
	}
	name := "node_memory_" + k
	if inKB {
		name += "_bytes"
	}
	if !validMetricName(name) {
		return "", fmt.Errorf("field %q does not make a valid metric name", truncate(key))
	}
	if len(cache) < 1000 { // bound the cache against hostile input
		cache[string(key)] = name
	}
	return name, nil
}

// collectVmstat reports the /proc/vmstat counters node_exporter exports by
// default (--collector.vmstat.fields `^(oom_kill|pgpg|pswp|pg.*fault).*`):
// pgpgin, pgpgout, pswpin, pswpout, pgfault, pgmajfault, oom_kill.
func (c *Collector) collectVmstat(time.Time) error {
	data, err := c.readFile(c.procFile("vmstat"))
	if err != nil {
		return err
	}
	clear(c.seen)
	for n := 1; len(data) > 0; n++ {
		var line []byte
		line, data = nextLine(data)
		c.fields = splitFields(c.fields, line)
		if len(c.fields) == 0 {
			continue
		}
		name := c.vmstatName(c.fields[0])
		if name == "" {
			continue
		}
		if len(c.fields) != 2 {
			return fmt.Errorf("line %d: want \"name value\", got %q", n, truncate(line))
		}
		v, err := parseInt(c.fields[1])
		if err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
		if _, dup := c.seen[name]; dup {
			return fmt.Errorf("line %d: field %q appears twice", n, truncate(c.fields[0]))
		}
		c.seen[name] = struct{}{}
		c.b.add(name, v)
	}
	return nil
}

// vmstatName returns the metric name for a vmstat key, or "" when the key
// is not exported.
func (c *Collector) vmstatName(key []byte) string {
	if name, ok := c.vmNames[string(key)]; ok {
		return name
	}
	k := string(key)
	name := ""
	if vmstatExported(k) && validMetricName(k) {
		name = "node_vmstat_" + k
	}
	if len(c.vmNames) < 1000 {
		c.vmNames[k] = name
	}
	return name
}

func vmstatExported(k string) bool {
	if strings.HasPrefix(k, "oom_kill") || strings.HasPrefix(k, "pgpg") || strings.HasPrefix(k, "pswp") {
		return true
	}
	return strings.HasPrefix(k, "pg") && strings.Contains(k[2:], "fault")
}
