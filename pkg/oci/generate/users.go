package generate

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"github.com/crid-dev/crid/pkg/errdefs"
)

// Users is an image's /etc/passwd and /etc/group, for resolving the names
// a container runs as. Either may be empty: a scratch image has neither.
type Users struct {
	passwd []passwdEntry
	group  []groupEntry
}

type passwdEntry struct {
	name     string
	uid, gid uint32
	home     string
}

type groupEntry struct {
	name    string
	gid     uint32
	members []string
}

// ParseUsers reads the contents of /etc/passwd and /etc/group. Malformed
// lines are passed over, as libc does.
func ParseUsers(passwd, group []byte) Users {
	var u Users
	sc := bufio.NewScanner(bytes.NewReader(passwd))
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) < 7 || strings.HasPrefix(f[0], "#") {
			continue
		}
		uid, err1 := strconv.ParseUint(f[2], 10, 32)
		gid, err2 := strconv.ParseUint(f[3], 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		u.passwd = append(u.passwd, passwdEntry{name: f[0], uid: uint32(uid), gid: uint32(gid), home: f[5]})
	}
	sc = bufio.NewScanner(bytes.NewReader(group))
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) < 4 || strings.HasPrefix(f[0], "#") {
			continue
		}
		gid, err := strconv.ParseUint(f[2], 10, 32)
		if err != nil {
			continue
		}
		var members []string
		if f[3] != "" {
			members = strings.Split(f[3], ",")
		}
		u.group = append(u.group, groupEntry{name: f[0], gid: uint32(gid), members: members})
	}
	return u
}

// Identity is who the container's process is.
type Identity struct {
	UID, GID       uint32
	Additional     []uint32
	Home, Username string
}

// Resolve turns a user spec ("", "1000", "www-data", "1000:50",
// "www-data:group") into an identity. A numeric uid need not exist in
// /etc/passwd (its gid is then 0 unless given); a name must.
func (u Users) Resolve(user string) (Identity, error) {
	id := Identity{Home: "/"}
	userPart, groupPart, hasGroup := strings.Cut(user, ":")
	switch {
	case userPart == "":
		if p, ok := u.byUID(0); ok {
			id.Username, id.Home = p.name, p.home
		}
	case isNumber(userPart):
		uid, err := strconv.ParseUint(userPart, 10, 32)
		if err != nil {
			return id, badInput("uid %q: %v", userPart, err)
		}
		id.UID = uint32(uid)
		if p, ok := u.byUID(id.UID); ok {
			id.GID, id.Home, id.Username = p.gid, p.home, p.name
		}
	default:
		p, ok := u.byName(userPart)
		if !ok {
			return id, badInput("user %q is not in the image's /etc/passwd", userPart)
		}
		id.UID, id.GID, id.Home, id.Username = p.uid, p.gid, p.home, p.name
	}
	if hasGroup {
		gid, err := u.ResolveGroup(groupPart)
		if err != nil {
			return id, err
		}
		id.GID = gid
	}
	if id.Home == "" {
		id.Home = "/"
	}
	return id, nil
}

// ResolveGroup turns a group name or number into a gid.
func (u Users) ResolveGroup(group string) (uint32, error) {
	if isNumber(group) {
		gid, err := strconv.ParseUint(group, 10, 32)
		if err != nil {
			return 0, badInput("gid %q: %v", group, err)
		}
		return uint32(gid), nil
	}
	for _, g := range u.group {
		if g.name == group {
			return g.gid, nil
		}
	}
	return 0, badInput("group %q is not in the image's /etc/group", group)
}

// GroupsOf lists the gids /etc/group names the user a member of.
func (u Users) GroupsOf(username string) []uint32 {
	if username == "" {
		return nil
	}
	var out []uint32
	for _, g := range u.group {
		for _, m := range g.members {
			if m == username {
				out = append(out, g.gid)
			}
		}
	}
	return out
}

func (u Users) byUID(uid uint32) (passwdEntry, bool) {
	for _, p := range u.passwd {
		if p.uid == uid {
			return p, true
		}
	}
	return passwdEntry{}, false
}

func (u Users) byName(name string) (passwdEntry, bool) {
	for _, p := range u.passwd {
		if p.name == name {
			return p, true
		}
	}
	return passwdEntry{}, false
}

func isNumber(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// badInput is a refusal of what the request (or the image it names)
// asks for: the kubelet must see InvalidArgument, not Unknown. A %w in
// format keeps the cause.
func badInput(format string, args ...any) error {
	return fmt.Errorf("%w: %w", fmt.Errorf(format, args...), errdefs.ErrInvalidArgument)
}
