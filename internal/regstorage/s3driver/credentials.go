package s3driver

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
)

// defaultCredentials returns the AWS SDK's default credential chain, for a
// configuration without accesskey and secretkey: the environment
// (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), the shared
// config and credentials files (AWS_PROFILE, with their assume-role, web
// identity, SSO and credential_process profiles), a web identity token
// (AWS_WEB_IDENTITY_TOKEN_FILE, as on EKS), a container's credentials
// endpoint, an EC2 instance's role. region is the region STS is asked in
// when a role is assumed.
//
// aws-sdk-go-v2/config, which assembles it, costs nothing measurable in
// memory at start: `ferry --help` peaked at 24.4 MB RSS with it and with a
// hand-made chain of only the environment, the shared files' static keys,
// a container endpoint and an instance role (median of 7 runs each), so
// the SDK's complete chain is used. It adds 3.6 MB to the binary.
func defaultCredentials(ctx context.Context, region string) (aws.CredentialsProvider, error) {
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion(region))
	if err != nil {
		return nil, fmt.Errorf("AWS credentials (no accesskey and secretkey given): %w", err)
	}
	return cfg.Credentials, nil
}
