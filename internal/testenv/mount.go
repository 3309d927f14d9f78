package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Tmpfs mounts a tmpfs of the given size ("2m") on a new temporary
// directory and returns it; it is unmounted when the test ends. Tests of
// a full or read-only filesystem use it. Mounting needs root (or
// CAP_SYS_ADMIN): without it the test is skipped, or failed under
// WHARF_INTEGRATION or WHARF_FAULT, where it must not pass by skipping.
func Tmpfs(t testing.TB, size string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "wharf-tmpfs")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0755", "tmpfs", dir).CombinedOutput(); err != nil {
		os.Remove(dir)
		cannotMount(t, "cannot mount a tmpfs (needs root): "+err.Error()+": "+string(out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
		os.Remove(dir)
	})
	return dir
}

// Ext4 makes an ext4 filesystem of size bytes in an image file, mounts
// it (loop device, errors=remount-ro) on a new temporary directory and
// returns the directory; it is unmounted when the test ends. Ext4Error
// then turns it read-only the way a disk error does in production, and
// Ext4Remount brings it back once nothing has files open on it. Needs
// root, like Tmpfs.
func Ext4(t testing.TB, size int64) string {
	t.Helper()
	img, err := os.CreateTemp("", "wharf-ext4-*.img")
	if err != nil {
		t.Fatal(err)
	}
	img.Close()
	t.Cleanup(func() { os.Remove(img.Name()) })
	if err := os.Truncate(img.Name(), size); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "wharf-ext4")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", img.Name()).CombinedOutput(); err != nil {
		cannotMount(t, "mkfs.ext4: "+err.Error()+": "+string(out))
	}
	if out, err := exec.Command("mount", "-o", "loop,errors=remount-ro", img.Name(), dir).CombinedOutput(); err != nil {
		os.Remove(dir)
		cannotMount(t, "cannot mount an ext4 image (needs root and loop devices): "+err.Error()+": "+string(out))
	}
	ext4Images.Store(dir, img.Name())
	t.Cleanup(func() {
		exec.Command("umount", "-l", dir).Run()
		os.Remove(dir)
	})
	return dir
}

var ext4Images sync.Map // mount dir -> image file

// Ext4Error makes the kernel record an error on the Ext4 filesystem at
// dir (sysfs trigger_fs_error), which with errors=remount-ro turns it
// read-only at once: every write fails with EROFS, open files included.
func Ext4Error(t testing.TB, dir string) {
	t.Helper()
	out, err := exec.Command("findmnt", "-no", "SOURCE", dir).Output()
	if err != nil {
		t.Fatalf("findmnt %s: %v", dir, err)
	}
	dev := filepath.Base(strings.TrimSpace(string(out)))
	if err := os.WriteFile("/sys/fs/ext4/"+dev+"/trigger_fs_error", []byte("1"), 0); err != nil {
		t.Fatalf("trigger ext4 error on %s: %v", dev, err)
	}
}

// Ext4Remount unmounts the Ext4 filesystem at dir and mounts it again,
// writable (an emergency read-only ext4 cannot be remounted rw in place).
// Nothing may have files open on it.
func Ext4Remount(t testing.TB, dir string) {
	t.Helper()
	img, ok := ext4Images.Load(dir)
	if !ok {
		t.Fatalf("%s is not an Ext4 mount", dir)
	}
	if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
		t.Fatalf("umount %s: %v: %s", dir, err, out)
	}
	if out, err := exec.Command("mount", "-o", "loop,errors=remount-ro", img.(string), dir).CombinedOutput(); err != nil {
		t.Fatalf("mount %s again: %v: %s", dir, err, out)
	}
}

// RemountMode remounts the filesystem at dir read-only ("ro") or
// writable ("rw") in place, as an operator does (mount -o remount,ro);
// read-only needs no file on it open for writing.
func RemountMode(t testing.TB, dir, mode string) {
	t.Helper()
	if out, err := exec.Command("mount", "-o", "remount,"+mode, dir).CombinedOutput(); err != nil {
		t.Fatalf("mount -o remount,%s %s: %v: %s", mode, dir, err, out)
	}
}

func cannotMount(t testing.TB, why string) {
	t.Helper()
	if Integration() || os.Getenv("WHARF_FAULT") != "" {
		t.Fatalf("required under WHARF_INTEGRATION/WHARF_FAULT: %s", why)
	}
	t.Skipf("skipping: %s", why)
}
