package postgres

// The NOTIFY payload: the ids of a change, never its data, as compact JSON.

import (
	"encoding/json"
	"errors"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

type changeJSON struct {
	Org    string `json:"o"`
	Rev    int64  `json:"r"`
	Target string `json:"d,omitempty"`
}

func encodeChange(c store.Change) string {
	return jsonText(changeJSON{Org: c.OrganizationID, Rev: c.Revision, Target: c.TargetDeviceID})
}

// maxPayload is PostgreSQL's limit on a NOTIFY payload (8000 bytes); anything longer is not
// one of ours.
const maxPayload = 8000

// parseChange reads a payload; anyone who may connect to the database can NOTIFY on the
// channel, so it is checked rather than trusted.
func parseChange(payload string) (store.Change, error) {
	if len(payload) > maxPayload {
		return store.Change{}, errors.New("change notification: payload too long")
	}
	var c changeJSON
	if err := json.Unmarshal([]byte(payload), &c); err != nil {
		return store.Change{}, errors.New("change notification: not a change")
	}
	if c.Org == "" || c.Rev <= 0 {
		return store.Change{}, errors.New("change notification: no organization or revision")
	}
	return store.Change{OrganizationID: c.Org, Revision: c.Rev, TargetDeviceID: c.Target}, nil
}
