// Package registry is the store backend for a repository in a registry that
// speaks the OCI distribution API.
//
// References, credentials (docker config.json, DOCKER_CONFIG, credential
// helpers) and the auth handshake (basic and bearer-token challenges) come
// from go-containerregistry. The API calls themselves are ours, because the
// copy engine needs what ggcr's remote package hides: whether a blob was
// skipped, mounted or uploaded, a streamed upload it can time, and errors
// that keep the registry's diagnostic codes.
package registry
