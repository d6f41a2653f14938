package main

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus/api"
)

func TestPickNamesAndIDs(t *testing.T) {
	users := []api.User{
		{ID: "0b7f6a3e-8d5c-4f4e-9a61-3c2d1e0f9a8b", Username: "alice"},
		{ID: "1c8e7b4f-9e6d-4a5f-8b72-4d3e2f1a0b9c", Username: "twin"},
		{ID: "2d9f8c5a-af7e-4b6a-9c83-5e4f3a2b1cad", Username: "twin"},
	}
	resolve := func(key string, err error) (string, error) {
		return pick(key, "user", func(u api.User) (string, string) { return u.ID, u.Username })(users, err)
	}
	id, err := resolve("alice", nil)
	require.NoError(t, err)
	assert.Equal(t, users[0].ID, id)

	_, err = resolve("carl", nil)
	require.EqualError(t, err, `no user named "carl"`)

	id, err = resolve("3e0a9d6b-b08f-4c7b-8d94-6f5a4b3c2dbe", nil)
	require.NoError(t, err, "an ID passes through for the coordinator to answer")
	assert.Equal(t, "3e0a9d6b-b08f-4c7b-8d94-6f5a4b3c2dbe", id)

	_, err = resolve("twin", nil)
	require.ErrorContains(t, err, `2 users are named "twin"`)

	id, err = resolve("carl", errors.New("forbidden"))
	require.NoError(t, err, "without a list the coordinator decides")
	assert.Equal(t, "carl", id)
}
