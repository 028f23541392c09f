package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/iru-responder/responder/internal/config"
)

func init() { commands = append(commands, newLoginCmd) }

func newLoginCmd() *cobra.Command {
	var username string
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Log in to Keycloak (password grant) and cache the token for the responder commands",
		Long: `Log in with the public client IRU_CLI_CLIENT_ID (iru-console) of the
Keycloak realm IRU_OIDC_ISSUER. On a terminal it prompts for the username
(unless --username) and the password without echo; otherwise it needs
--username and reads the password from the first line of stdin.

The access and refresh tokens are cached in ~/.config/iru/token.json
(IRU_TOKEN_FILE; mode 0600, folder 0700) and refreshed when they expire.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var cfg cliConfig
			if err := config.Load(&cfg); err != nil {
				return &exitError{code: 2, err: err}
			}
			in := cmd.InOrStdin()
			user, pass, err := credentials(in, cmd.ErrOrStderr(), username)
			if err != nil {
				return err
			}
			ct, err := passwordLogin(cmd.Context(), &cfg, user, pass)
			if err != nil {
				return err
			}
			path, _ := cfg.tokenPath()
			fmt.Fprintf(cmd.OutOrStdout(), "logged in as %s (token cached in %s, valid until %s)\n", ct.Username, path, ct.Expiry.Local().Format("15:04:05"))
			return nil
		},
	}
	cmd.Flags().StringVar(&username, "username", "", "Keycloak username (prompted for on a terminal when empty)")
	return cmd
}

// credentials reads the username and password: prompted on a terminal
// (password without echo), else --username and the first line of stdin.
func credentials(in io.Reader, prompt io.Writer, username string) (string, string, error) {
	f, isFile := in.(*os.File)
	terminal := false
	if isFile {
		_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
		terminal = err == nil
	}
	br := bufio.NewReader(in)
	if username == "" {
		if !terminal {
			return "", "", &exitError{code: 2, err: errors.New("login: --username is required when stdin is not a terminal")}
		}
		fmt.Fprint(prompt, "Username: ")
		line, err := br.ReadString('\n')
		if err != nil && line == "" {
			return "", "", fmt.Errorf("login: read username: %w", err)
		}
		username = strings.TrimSpace(line)
	}
	var pass string
	var err error
	if terminal {
		fmt.Fprint(prompt, "Password: ")
		pass, err = readNoEcho(f, br)
		fmt.Fprintln(prompt)
	} else {
		pass, err = br.ReadString('\n')
		if errors.Is(err, io.EOF) && pass != "" {
			err = nil
		}
	}
	if err != nil {
		return "", "", fmt.Errorf("login: read password: %w", err)
	}
	pass = strings.TrimRight(pass, "\r\n")
	if username == "" || pass == "" {
		return "", "", &exitError{code: 2, err: errors.New("login: username and password must not be empty")}
	}
	return username, pass, nil
}

// readNoEcho reads one line from the terminal f with echo turned off.
func readNoEcho(f *os.File, br *bufio.Reader) (string, error) {
	fd := int(f.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return "", fmt.Errorf("terminal: %w", err)
	}
	quiet := *old
	quiet.Lflag &^= unix.ECHO
	quiet.Lflag |= unix.ICANON | unix.ISIG
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &quiet); err != nil {
		return "", fmt.Errorf("terminal: %w", err)
	}
	defer func() { _ = unix.IoctlSetTermios(fd, unix.TCSETS, old) }()
	line, err := br.ReadString('\n')
	if errors.Is(err, io.EOF) && line != "" {
		err = nil
	}
	return line, err
}
