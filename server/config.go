package server

// This file reads distribution configuration files (--config).

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/distribution/distribution/v3/configuration"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/factory"
)

// ConfigStorage reads the storage section of a distribution configuration
// file. For filesystem storage it returns the root directory, to be opened
// as a local root (with its lock); for any other driver it returns that
// driver, built by distribution's factory exactly as a registry with this
// configuration builds it, and a description for messages
// ("s3 bucket registry").
func ConfigStorage(ctx context.Context, path string) (root string, d storagedriver.StorageDriver, desc string, err error) {
	cfg, err := parseConfigFile(path)
	if err != nil {
		return "", nil, "", err
	}
	params := cfg.Storage.Parameters()
	switch t := cfg.Storage.Type(); t {
	case "filesystem":
		root, _ = params["rootdirectory"].(string)
		if root == "" {
			root = defaultFilesystemRoot
		}
		return root, nil, "", nil
	case "inmemory", "":
		return "", nil, "", fmt.Errorf("server: config file %s: %q storage holds nothing outside a running registry", path, t)
	default:
		d, err = factory.Create(ctx, t, params)
		if err != nil {
			// ferry's S3 driver names itself ("s3 storage: ..."), as it
			// must where distribution reports its error bare; others may
			// not.
			if !strings.HasPrefix(err.Error(), t+" storage:") {
				err = fmt.Errorf("%s storage: %w", t, err)
			}
			return "", nil, "", fmt.Errorf("server: config file %s: %w", path, err)
		}
		desc = t + " storage"
		if b, ok := params["bucket"]; ok {
			desc = fmt.Sprintf("%s bucket %v", t, b)
		}
		if p, ok := params["rootdirectory"].(string); ok && p != "" {
			desc += " under " + p
		}
		return "", d, desc, nil
	}
}

// parseConfigFile reads a distribution configuration file, with
// distribution's REGISTRY_* environment overrides applied.
func parseConfigFile(path string) (*configuration.Configuration, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("server: config file: %w", err)
	}
	defer f.Close()
	cfg, err := configuration.Parse(f)
	if err != nil {
		return nil, fmt.Errorf("server: config file %s: %w", path, err)
	}
	return cfg, nil
}
