// Package watch is what the storage engines share to tell watchers about commits: the set of
// changes one transaction makes (Changes) and the queue and goroutine that call the watchers
// of a store in commit order without ever making a committer wait (Hub).
package watch

import "github.com/nexodus-sdk/nexodus/coordinator/store"

// Changes collects what one transaction appended: per organization, the highest revision and
// the one device every appended event was targeted at, if there is one. The zero value is
// empty and ready.
type Changes struct {
	orgs  []string // in first-append order
	byOrg map[string]*store.Change
	mixed map[string]bool // appended to several targets (or untargeted): no TargetDeviceID
}

// Add records an event or signal appended to orgID's log with revision rev.
func (c *Changes) Add(orgID, target string, rev int64) {
	if c.byOrg == nil {
		c.byOrg, c.mixed = map[string]*store.Change{}, map[string]bool{}
	}
	ch, ok := c.byOrg[orgID]
	if !ok {
		c.orgs = append(c.orgs, orgID)
		c.byOrg[orgID] = &store.Change{OrganizationID: orgID, Revision: rev, TargetDeviceID: target}
		c.mixed[orgID] = target == ""
		return
	}
	ch.Revision = max(ch.Revision, rev)
	if c.mixed[orgID] || ch.TargetDeviceID != target {
		c.mixed[orgID] = true
		ch.TargetDeviceID = ""
	}
}

// List returns one Change per organization appended to, nil when nothing was.
func (c *Changes) List() []store.Change {
	var out []store.Change
	for _, o := range c.orgs {
		out = append(out, *c.byOrg[o])
	}
	return out
}
