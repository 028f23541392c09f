// Package drills embeds the drill definitions file, drills.yaml, so that
// the binaries carry it. Package internal/drills parses and validates it;
// the file's format is described in README.md in this folder.
//
// This Go file exists only because go:embed cannot reach files outside the
// embedding package's folder.
package drills

import _ "embed"

// File is the content of drills.yaml.
//
//go:embed drills.yaml
var File []byte

// FileName is the name File is reported under in errors.
const FileName = "drills/drills.yaml"
