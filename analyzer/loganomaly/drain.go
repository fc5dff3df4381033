package loganomaly

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// DrainConfig tunes a Drain miner. The zero value means the defaults,
// which are Drain3's except for the cluster bound.
type DrainConfig struct {
	// Depth of the prefix tree counting the root, the token-count level and
	// the leaves: Depth-3 leading tokens route a line. Default 4, minimum 3.
	Depth int `json:"depth"`
	// SimThreshold is the share of a template's constant tokens a line must
	// match to join it, in (0,1]. Default 0.4.
	SimThreshold float64 `json:"sim_threshold"`
	// MaxChildren bounds a tree node's children; further tokens share a
	// wildcard child. Default 100, minimum 2.
	MaxChildren int `json:"max_children"`
	// MaxClusters bounds the templates kept; the least recently matched one
	// is forgotten to make room. Default 10,000.
	MaxClusters int `json:"max_clusters"`
}

func (c DrainConfig) withDefaults() DrainConfig {
	if c.Depth == 0 {
		c.Depth = 4
	}
	if c.SimThreshold == 0 {
		c.SimThreshold = 0.4
	}
	if c.MaxChildren == 0 {
		c.MaxChildren = 100
	}
	if c.MaxClusters == 0 {
		c.MaxClusters = 10_000
	}
	return c
}

// Validate checks a configuration after defaults are applied.
func (c DrainConfig) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.Depth < 3 {
		errs = append(errs, fmt.Errorf("drain depth %d: must be at least 3 (root, token count, leaves)", c.Depth))
	}
	if !(c.SimThreshold > 0 && c.SimThreshold <= 1) {
		errs = append(errs, fmt.Errorf("drain similarity threshold %v: must be in (0,1]", c.SimThreshold))
	}
	if c.MaxChildren < 2 {
		errs = append(errs, fmt.Errorf("drain max children %d: must be at least 2", c.MaxChildren))
	}
	if c.MaxClusters < 1 {
		errs = append(errs, fmt.Errorf("drain max clusters %d: must be at least 1", c.MaxClusters))
	}
	return errors.Join(errs...)
}

// Template is one cluster of log lines.
type Template struct {
	ID       uint64 `json:"id"`
	Template string `json:"template"`
	// Size is the number of lines that joined the cluster.
	Size uint64 `json:"size"`
}

// Drain mines log templates online (He et al., "Drain: An Online Log
// Parsing Approach with Fixed Depth Tree", ICWS 2017), following Drain3's
// tree and matching rules. A Drain is not safe for concurrent use.
type Drain struct {
	cfg      DrainConfig
	lengths  map[int]*drainNode // first level: token count
	clusters map[uint64]*cluster
	// LRU list of clusters, most recently matched first.
	newest, oldest *cluster
	nextID         uint64
	clock          uint64 // logical time of the last match, for the LRU order

	buf  []byte // masked line scratch
	toks []string
}

type drainNode struct {
	parent   *drainNode // nil for a token-count node
	key      string     // key in parent.children; for a token-count node ""
	length   int        // token count, on the token-count level
	children map[string]*drainNode
	leaves   []*cluster // in creation order
}

type cluster struct {
	id       uint64
	template string   // tokens joined by single spaces
	tokens   []string // substrings of template
	size     uint64
	lastUsed uint64
	path     []string // keys from the token-count node to the leaf node
	leaf     *drainNode

	newer, older *cluster
}

// NewDrain returns an empty miner.
func NewDrain(cfg DrainConfig) (*Drain, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return newDrain(cfg.withDefaults()), nil
}

func newDrain(cfg DrainConfig) *Drain {
	return &Drain{
		cfg:      cfg,
		lengths:  make(map[int]*drainNode),
		clusters: make(map[uint64]*cluster),
		nextID:   1,
	}
}

// Config returns the configuration in effect (defaults applied).
func (d *Drain) Config() DrainConfig { return d.cfg }

// Len is the number of templates held.
func (d *Drain) Len() int { return len(d.clusters) }

// Add mines one line: it returns the id and current template of the
// cluster the line joined, and whether the cluster was created for it. Ids
// start at 1 and are never reused by one miner.
func (d *Drain) Add(line string) (id uint64, template string, isNew bool) {
	tokens := d.tokenize(line)
	d.clock++
	if c := d.treeSearch(tokens, false); c != nil {
		d.merge(c, tokens)
		c.size++
		c.lastUsed = d.clock
		d.touch(c)
		return c.id, c.template, false
	}
	c := newCluster(d.nextID, tokens)
	d.nextID++
	c.size = 1
	c.lastUsed = d.clock
	d.insert(c, nil)
	for len(d.clusters) > d.cfg.MaxClusters {
		d.remove(d.oldest)
	}
	return c.id, c.template, true
}

// Match returns the cluster a line belongs to without changing anything,
// or ok false. Unlike Add, wildcard positions count as matching.
func (d *Drain) Match(line string) (id uint64, template string, ok bool) {
	if c := d.treeSearch(d.tokenize(line), true); c != nil {
		return c.id, c.template, true
	}
	return 0, "", false
}

// Template returns one cluster's current template.
func (d *Drain) Template(id uint64) (string, bool) {
	c, ok := d.clusters[id]
	if !ok {
		return "", false
	}
	return c.template, true
}

// Templates returns every cluster, by id.
func (d *Drain) Templates() []Template {
	out := make([]Template, 0, len(d.clusters))
	for _, c := range d.clusters {
		out = append(out, Template{ID: c.id, Template: c.template, Size: c.size})
	}
	slices.SortFunc(out, func(a, b Template) int { return cmpUint(a.ID, b.ID) })
	return out
}

// Mask returns the line as the miner sees it: whitespace collapsed and
// variables replaced by placeholders (<NUM>, <HEX>, <IP>, <UUID>, <DUR>,
// <TS>, <STR>).
func Mask(line string) string { return validUTF8(string(maskLine(nil, line))) }

// validUTF8 replaces invalid bytes, so templates survive a JSON round trip
// unchanged.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// tokenize masks line into d.buf and splits it; the tokens share one
// string and stay valid until the next call.
func (d *Drain) tokenize(line string) []string {
	d.buf = maskLine(d.buf[:0], line)
	s := validUTF8(string(d.buf))
	d.toks = d.toks[:0]
	for len(s) > 0 {
		i := strings.IndexByte(s, ' ')
		if i < 0 {
			d.toks = append(d.toks, s)
			break
		}
		d.toks = append(d.toks, s[:i])
		s = s[i+1:]
	}
	return d.toks
}

func newCluster(id uint64, tokens []string) *cluster {
	c := &cluster{id: id}
	c.setTokens(tokens)
	return c
}

// setTokens makes the cluster own a copy of tokens.
func (c *cluster) setTokens(tokens []string) {
	c.template = strings.Join(tokens, " ")
	c.tokens = make([]string, len(tokens))
	s := c.template
	for i, t := range tokens {
		c.tokens[i] = s[:len(t)]
		if i+1 < len(tokens) {
			s = s[len(t)+1:]
		}
	}
}

// merge turns positions where the line differs from the template into
// wildcards.
func (d *Drain) merge(c *cluster, tokens []string) {
	changed := false
	for i, t := range c.tokens {
		if t != ParamToken && t != tokens[i] {
			changed = true
			break
		}
	}
	if !changed {
		return
	}
	merged := make([]string, len(tokens))
	for i, t := range c.tokens {
		if t == tokens[i] {
			merged[i] = t
		} else {
			merged[i] = ParamToken
		}
	}
	c.setTokens(merged)
}

func hasDigit(s string) bool {
	for i := 0; i < len(s); i++ {
		if isDigit(s[i]) {
			return true
		}
	}
	return false
}

// prefixLen is how many leading tokens route a line of n tokens.
func (d *Drain) prefixLen(n int) int { return max(0, min(d.cfg.Depth-3, n-1)) }

func (d *Drain) treeSearch(tokens []string, includeParams bool) *cluster {
	cur := d.lengths[len(tokens)]
	if cur == nil {
		return nil
	}
	for _, tok := range tokens[:d.prefixLen(len(tokens))] {
		next := cur.children[tok]
		if next == nil {
			next = cur.children[ParamToken]
		}
		if next == nil {
			return nil
		}
		cur = next
	}
	return d.fastMatch(cur.leaves, tokens, includeParams)
}

// fastMatch picks the most similar cluster, preferring more wildcards on
// ties, if it reaches the threshold.
func (d *Drain) fastMatch(leaves []*cluster, tokens []string, includeParams bool) *cluster {
	var best *cluster
	bestSim, bestParams := -1.0, -1
	for _, c := range leaves {
		sim, params := seqDistance(c.tokens, tokens, includeParams)
		if sim > bestSim || (sim == bestSim && params > bestParams) {
			best, bestSim, bestParams = c, sim, params
		}
	}
	if best != nil && bestSim >= d.cfg.SimThreshold {
		return best
	}
	return nil
}

func seqDistance(template, tokens []string, includeParams bool) (float64, int) {
	if len(template) == 0 {
		return 1, 0
	}
	same, params := 0, 0
	for i, t := range template {
		if t == ParamToken {
			params++
			continue
		}
		if t == tokens[i] {
			same++
		}
	}
	if includeParams {
		same += params
	}
	return float64(same) / float64(len(template)), params
}

// insert places c in the tree: along path when restoring a checkpoint,
// otherwise along the route Drain3 gives its tokens.
func (d *Drain) insert(c *cluster, path []string) {
	n := len(c.tokens)
	cur := d.lengths[n]
	if cur == nil {
		cur = &drainNode{length: n}
		d.lengths[n] = cur
	}
	if path == nil {
		path = make([]string, 0, d.prefixLen(n))
		for _, tok := range c.tokens[:d.prefixLen(n)] {
			key := d.childKey(cur, tok)
			path = append(path, key)
			cur = cur.child(key)
		}
	} else {
		for _, key := range path {
			cur = cur.child(key)
		}
	}
	c.path = path
	c.leaf = cur
	if n == 0 {
		// One cluster holds every empty line.
		for _, old := range cur.leaves {
			d.unlink(old)
			delete(d.clusters, old.id)
		}
		cur.leaves = cur.leaves[:0]
	}
	cur.leaves = append(cur.leaves, c)
	d.clusters[c.id] = c
	d.pushNewest(c)
}

// childKey is the key under which tok continues the route from n.
func (d *Drain) childKey(n *drainNode, tok string) string {
	if _, ok := n.children[tok]; ok {
		return tok
	}
	if hasDigit(tok) {
		return ParamToken
	}
	_, hasParam := n.children[ParamToken]
	switch {
	case hasParam && len(n.children) < d.cfg.MaxChildren:
		return tok
	case hasParam:
		return ParamToken
	case len(n.children)+1 < d.cfg.MaxChildren:
		return tok
	default:
		return ParamToken
	}
}

func (n *drainNode) child(key string) *drainNode {
	c := n.children[key]
	if c == nil {
		if n.children == nil {
			n.children = make(map[string]*drainNode)
		}
		c = &drainNode{parent: n, key: key}
		n.children[key] = c
	}
	return c
}

// remove forgets a cluster and prunes the tree nodes left empty, so the
// tree stays bounded by the clusters held.
func (d *Drain) remove(c *cluster) {
	d.unlink(c)
	delete(d.clusters, c.id)
	n := c.leaf
	if i := slices.Index(n.leaves, c); i >= 0 {
		n.leaves = slices.Delete(n.leaves, i, i+1)
	}
	for n != nil && len(n.leaves) == 0 && len(n.children) == 0 {
		if n.parent == nil {
			delete(d.lengths, n.length)
			break
		}
		delete(n.parent.children, n.key)
		n = n.parent
	}
}

func (d *Drain) pushNewest(c *cluster) {
	c.older = d.newest
	c.newer = nil
	if d.newest != nil {
		d.newest.newer = c
	}
	d.newest = c
	if d.oldest == nil {
		d.oldest = c
	}
}

func (d *Drain) unlink(c *cluster) {
	if c.newer != nil {
		c.newer.older = c.older
	} else if d.newest == c {
		d.newest = c.older
	}
	if c.older != nil {
		c.older.newer = c.newer
	} else if d.oldest == c {
		d.oldest = c.newer
	}
	c.newer, c.older = nil, nil
}

func (d *Drain) touch(c *cluster) {
	if d.newest == c {
		return
	}
	d.unlink(c)
	d.pushNewest(c)
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// drainState is the serialised miner: clusters by id (each leaf's order),
// with the tree path each was filed under and its last-use time (the LRU
// order), so a restored miner routes and evicts exactly as the original.
type drainState struct {
	Version  int            `json:"version"`
	Config   DrainConfig    `json:"config"`
	NextID   uint64         `json:"next_id"`
	Clock    uint64         `json:"clock"`
	Clusters []clusterState `json:"clusters"`
}

type clusterState struct {
	ID       uint64   `json:"id"`
	Tokens   []string `json:"tokens"`
	Size     uint64   `json:"size"`
	LastUsed uint64   `json:"last_used"`
	Path     []string `json:"path"`
}

const drainStateVersion = 1

// MarshalJSON serialises the miner's whole state, for checkpoints.
func (d *Drain) MarshalJSON() ([]byte, error) {
	st := drainState{Version: drainStateVersion, Config: d.cfg, NextID: d.nextID, Clock: d.clock,
		Clusters: make([]clusterState, 0, len(d.clusters))}
	for _, c := range d.clusters {
		st.Clusters = append(st.Clusters, clusterState{ID: c.id, Tokens: c.tokens, Size: c.size, LastUsed: c.lastUsed, Path: c.path})
	}
	slices.SortFunc(st.Clusters, func(a, b clusterState) int { return cmpUint(a.ID, b.ID) })
	return json.Marshal(st)
}

// UnmarshalJSON replaces the miner's state with a serialised one.
func (d *Drain) UnmarshalJSON(b []byte) error {
	var st drainState
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("drain state: %w", err)
	}
	if st.Version != drainStateVersion {
		return fmt.Errorf("drain state version %d: this build reads version %d", st.Version, drainStateVersion)
	}
	if err := st.Config.Validate(); err != nil {
		return fmt.Errorf("drain state: %w", err)
	}
	cfg := st.Config.withDefaults()
	nd := newDrain(cfg)
	nd.nextID, nd.clock = st.NextID, st.Clock
	slices.SortFunc(st.Clusters, func(a, b clusterState) int { return cmpUint(a.ID, b.ID) })
	for i, cs := range st.Clusters {
		if cs.ID == 0 || cs.ID >= st.NextID || (i > 0 && cs.ID == st.Clusters[i-1].ID) {
			return fmt.Errorf("drain state: cluster id %d duplicated or not below next id %d", cs.ID, st.NextID)
		}
		if want := nd.prefixLen(len(cs.Tokens)); len(cs.Path) != want {
			return fmt.Errorf("drain state: cluster %d has a tree path of %d keys, want %d", cs.ID, len(cs.Path), want)
		}
		for _, t := range cs.Tokens {
			if t == "" || strings.ContainsFunc(t, func(r rune) bool { return r < 128 && isSpace(byte(r)) }) {
				return fmt.Errorf("drain state: cluster %d has an empty token or one with whitespace", cs.ID)
			}
		}
		c := newCluster(cs.ID, cs.Tokens)
		c.size, c.lastUsed = cs.Size, cs.LastUsed
		nd.insert(c, cs.Path)
	}
	// insert pushed clusters in id order; rebuild the LRU list by last use.
	byUse := make([]*cluster, 0, len(nd.clusters))
	for _, c := range nd.clusters {
		byUse = append(byUse, c)
	}
	slices.SortFunc(byUse, func(a, b *cluster) int {
		if r := cmpUint(a.lastUsed, b.lastUsed); r != 0 {
			return r
		}
		return cmpUint(a.id, b.id)
	})
	nd.newest, nd.oldest = nil, nil
	for _, c := range byUse {
		c.newer, c.older = nil, nil
		nd.pushNewest(c)
	}
	for len(nd.clusters) > cfg.MaxClusters {
		nd.remove(nd.oldest)
	}
	*d = *nd
	return nil
}
