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

	"github.com/iru-responder/responder/internal/apiclient"
	"github.com/iru-responder/responder/internal/config"
)

func newLoginCmd() *cobra.Command {
	var username, otp string
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Log in to Keycloak (password grant) and cache the token for the responder commands",
		Long: `Log in with the public client IRU_CLI_CLIENT_ID (iru-console) of the
Keycloak realm IRU_OIDC_ISSUER. On a terminal it prompts for the username
(unless --username), the password without echo, and the one-time code of
your authenticator app (unless --otp; leave it empty if your account has no
second factor). Otherwise it needs --username, reads the password from the
first line of stdin, and sends a code only with --otp.

The realm asks holders of ir-lead and ir-admin for the code (Keycloak's
direct grant "totp" parameter); without it, or with a wrong one, the login
is refused like a wrong password, and repeated failures lock the account for
a while (brute-force detection). The lab's seeds are printed by 'starter lab'.

The access and refresh tokens are cached in ~/.config/iru/token.json
(IRU_TOKEN_FILE; mode 0600, folder 0700) and refreshed when they expire.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var cfg apiclient.Config
			if err := config.Load(&cfg); err != nil {
				return &exitError{code: 2, err: err}
			}
			in := cmd.InOrStdin()
			user, pass, code, err := credentials(in, cmd.ErrOrStderr(), username, otp, cmd.Flags().Changed("otp"))
			if err != nil {
				return err
			}
			ct, err := apiclient.Login(cmd.Context(), &cfg, user, pass, code)
			if err != nil {
				return err
			}
			path, _ := cfg.TokenPath()
			fmt.Fprintf(cmd.OutOrStdout(), "logged in as %s (token cached in %s, valid until %s)\n", ct.Username, path, ct.Expiry.Local().Format("15:04:05"))
			return nil
		},
	}
	cmd.Flags().StringVar(&username, "username", "", "Keycloak username (prompted for on a terminal when empty)")
	cmd.Flags().StringVar(&otp, "otp", "", "one-time code (TOTP) of your second factor, for non-interactive use (prompted for on a terminal)")
	return cmd
}

// credentials reads the username, password and one-time code: prompted on a
// terminal (password without echo; the code unless --otp was given), else
// --username, the first line of stdin and --otp.
func credentials(in io.Reader, prompt io.Writer, username, otp string, otpGiven bool) (user, pass, code string, err error) {
	user, pass, br, terminal, err := readUserPassword(in, prompt, username)
	if err != nil {
		return "", "", "", err
	}
	code = strings.TrimSpace(otp)
	if terminal && !otpGiven {
		fmt.Fprint(prompt, "One-time code (empty if your account has none): ")
		line, rerr := br.ReadString('\n')
		if rerr != nil && !errors.Is(rerr, io.EOF) {
			return "", "", "", fmt.Errorf("login: read one-time code: %w", rerr)
		}
		code = strings.TrimSpace(line)
	}
	for _, r := range code {
		if r < '0' || r > '9' {
			return "", "", "", &exitError{code: 2, err: errors.New("login: the one-time code is digits only")}
		}
	}
	return user, pass, code, nil
}

// readUserPassword reads the username and password: prompted on a terminal
// (password without echo), else --username and the first line of stdin.
func readUserPassword(in io.Reader, prompt io.Writer, username string) (string, string, *bufio.Reader, bool, error) {
	f, isFile := in.(*os.File)
	terminal := false
	if isFile {
		_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
		terminal = err == nil
	}
	br := bufio.NewReader(in)
	if username == "" {
		if !terminal {
			return "", "", nil, false, &exitError{code: 2, err: errors.New("login: --username is required when stdin is not a terminal")}
		}
		fmt.Fprint(prompt, "Username: ")
		line, err := br.ReadString('\n')
		if err != nil && line == "" {
			return "", "", nil, false, fmt.Errorf("login: read username: %w", err)
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
		return "", "", nil, false, fmt.Errorf("login: read password: %w", err)
	}
	pass = strings.TrimRight(pass, "\r\n")
	if username == "" || pass == "" {
		return "", "", nil, false, &exitError{code: 2, err: errors.New("login: username and password must not be empty")}
	}
	return username, pass, br, terminal, nil
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
