package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/iru-responder/responder/internal/auth"
	"github.com/iru-responder/responder/internal/codec"
	"github.com/iru-responder/responder/internal/config"
	"github.com/iru-responder/responder/internal/logging"
)

// codecServerConfig configures `starter codec-server`.
type codecServerConfig struct {
	Log        config.Log
	Protection ProtectionConfig
	OIDC       auth.OIDCConfig
}

// Validate implements config.Validator.
func (c *codecServerConfig) Validate() error { return c.Protection.validate() }

func newCodecServerCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "codec-server",
		Short: "Serve /encode and /decode for the Temporal Web UI and CLI, to authorized responders only",
		Long: `codec-server decrypts workflow payloads for the Temporal Web UI (set its codec
endpoint to this server, with "pass access token") and for the CLI
(--codec-endpoint, --codec-auth "Bearer <token>"). A request needs a Keycloak
access token of a responder (ir-responder, ir-lead or ir-admin), or the static
IRU_CODEC_TOKEN when one is set.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var cfg codecServerConfig
			if err := config.Load(&cfg); err != nil {
				return &exitError{code: 2, err: err}
			}
			log := logging.New(os.Stderr, cfg.Log, "codec-server")
			prot, err := openProtection(cmd.Context(), cfg.Protection)
			if err != nil {
				return err
			}
			defer func() { _ = prot.Close() }()
			var authn codec.Authenticator = oidcCodecAuth{v: auth.NewVerifier(cfg.OIDC, nil)}
			if tok := cfg.Protection.Codec.Token; tok != "" {
				static, err := codec.NewStaticTokenAuthenticator(tok, "codec-token")
				if err != nil {
					return err
				}
				authn = eitherAuth{authn, static}
			}
			h, err := codec.NewServer(codec.ServerOptions{Codec: codec.NewDisplayCodec(prot.Ring), Authenticator: authn,
				AllowedOrigins: cfg.Protection.Codec.CORSOrigins, Log: log})
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", cfg.Protection.Codec.ServerAddr)
			if err != nil {
				return fmt.Errorf("IRU_CODEC_SERVER_ADDR=%s: %w", cfg.Protection.Codec.ServerAddr, err)
			}
			srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second}
			go func() {
				<-cmd.Context().Done()
				_ = srv.Close()
			}()
			log.Info("serving", "addr", ln.Addr().String())
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		},
	}
}

// oidcCodecAuth accepts a Keycloak access token of a responder.
type oidcCodecAuth struct{ v *auth.Verifier }

func (a oidcCodecAuth) Authenticate(r *http.Request) (codec.Identity, error) {
	id, err := a.v.Verify(r.Context(), auth.BearerToken(r))
	if err != nil {
		return codec.Identity{}, fmt.Errorf("%w: %v", codec.ErrUnauthenticated, err)
	}
	if !id.HasAnyRole(auth.RoleResponder, auth.RoleLead, auth.RoleAdmin) {
		return codec.Identity{}, fmt.Errorf("%w: %s is not a responder", codec.ErrUnauthenticated, id.Actor())
	}
	return codec.Identity{Subject: id.Actor()}, nil
}

// eitherAuth accepts what any of its authenticators accepts.
type eitherAuth []codec.Authenticator

func (e eitherAuth) Authenticate(r *http.Request) (codec.Identity, error) {
	var errs []error
	for _, a := range e {
		id, err := a.Authenticate(r)
		if err == nil {
			return id, nil
		}
		errs = append(errs, err)
	}
	return codec.Identity{}, errors.Join(errs...)
}
