// Package temporal holds the Temporal server configuration that
// docker-compose.yml mounts and `starter cluster` writes out: the same
// bytes, embedded here so the cluster mode never depends on the working
// folder.
package temporal

import _ "embed"

// ServerConfig is config/iru.yaml, the server's configuration template
// (rendered by the server itself from its environment; see the file's
// header for the variables).
//
//go:embed config/iru.yaml
var ServerConfig []byte

// DynamicConfig is dynamicconfig.yaml, the server's dynamic configuration.
//
//go:embed dynamicconfig.yaml
var DynamicConfig []byte

// Env is the name of the server configuration: `--env iru` loads
// config/iru.yaml.
const Env = "iru"
