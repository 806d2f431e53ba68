package uploads

import (
	"context"
	"path"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/internal/regstorage/fsdriver"
)

func TestListAndRemove(t *testing.T) {
	ctx := context.Background()
	d, err := fsdriver.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	put := func(p, content string) {
		if err := d.PutContent(ctx, p, []byte(content)); err != nil {
			t.Fatal(err)
		}
	}
	up := func(repo, id string) string { return path.Join(reposDir, repo, "_uploads", id) }
	put(up("app", "old")+"/data", "0123456789")
	put(up("app", "old")+"/startedat", now.Add(-48*time.Hour).Format(time.RFC3339))
	put(up("team/web", "new")+"/data", "01234")
	put(up("team/web", "new")+"/startedat", now.Add(-time.Minute).Format(time.RFC3339))
	put(up("team/web", "nostart")+"/data", "0")
	put(path.Join(reposDir, "app", "_manifests", "tags", "v1", "current", "link"), "sha256:x")

	all, err := List(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 || all[0].Repository != "app" || all[0].ID != "old" || all[0].Size != 10 || !all[0].StartedAt.Equal(now.Add(-48*time.Hour)) ||
		all[1].Repository != "team/web" || all[1].ID != "new" || all[1].Size != 5 || all[2].ID != "nostart" || time.Since(all[2].StartedAt) > time.Hour {
		t.Fatalf("List = %+v", all)
	}
	removed, err := Remove(ctx, d, now.Add(-24*time.Hour), true)
	if err != nil || len(removed) != 1 || removed[0].ID != "old" {
		t.Fatalf("dry run Remove = %+v, %v", removed, err)
	}
	if again, _ := List(ctx, d); len(again) != 3 {
		t.Fatalf("dry run removed something: %+v", again)
	}
	if removed, err = Remove(ctx, d, now.Add(-24*time.Hour), false); err != nil || len(removed) != 1 {
		t.Fatalf("Remove = %+v, %v", removed, err)
	}
	if left, _ := List(ctx, d); len(left) != 2 || left[0].ID != "new" {
		t.Fatalf("after Remove: %+v", left)
	}
	if _, err := d.Stat(ctx, path.Join(reposDir, "app", "_manifests", "tags", "v1", "current", "link")); err != nil {
		t.Errorf("Remove touched a tag: %v", err)
	}
}

func TestDirRefusesOtherPaths(t *testing.T) {
	if d, err := Dir("team/web", "01a24e2e-6e82"); err != nil || d != reposDir+"/team/web/_uploads/01a24e2e-6e82" {
		t.Errorf("Dir = %q, %v", d, err)
	}
	for _, c := range [][2]string{{"app", ""}, {"app", ".."}, {"app", "a/b"}, {"", "x"}, {"../..", "x"}, {"app", `a\b`}} {
		if d, err := Dir(c[0], c[1]); err == nil {
			t.Errorf("Dir(%q, %q) = %q, want an error", c[0], c[1], d)
		}
	}
}
