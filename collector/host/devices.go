package host

import (
	"bytes"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// sectorSize is the unit of /proc/diskstats' sector counts, whatever the
// device's real sector size.
const sectorSize = 512

// collectDiskstats reports /proc/diskstats per device, except devices
// matching DiskDevicesExclude.
func (c *Collector) collectDiskstats(time.Time) error {
	stats, err := c.block.ProcDiskstats()
	if err != nil {
		return err
	}
	clear(c.seen)
	for i := range stats {
		d := &stats[i]
		if c.diskExclude != nil && c.diskExclude.MatchString(d.DeviceName) {
			continue
		}
		dev := labelValue(d.DeviceName)
		if _, dup := c.seen[dev]; dup {
			return fmt.Errorf("device %q appears twice", dev)
		}
		c.seen[dev] = struct{}{}
		c.b.add("node_disk_reads_completed_total", float64(d.ReadIOs), "device", dev)
		c.b.add("node_disk_read_bytes_total", float64(d.ReadSectors)*sectorSize, "device", dev)
		c.b.add("node_disk_read_time_seconds_total", float64(d.ReadTicks)/1000, "device", dev)
		c.b.add("node_disk_writes_completed_total", float64(d.WriteIOs), "device", dev)
		c.b.add("node_disk_written_bytes_total", float64(d.WriteSectors)*sectorSize, "device", dev)
		c.b.add("node_disk_write_time_seconds_total", float64(d.WriteTicks)/1000, "device", dev)
		c.b.add("node_disk_io_now", float64(d.IOsInProgress), "device", dev)
		c.b.add("node_disk_io_time_seconds_total", float64(d.IOsTotalTicks)/1000, "device", dev)
	}
	return nil
}

// collectFilesystems reports size and inode usage of every mount in
// ProcPath/self/mountinfo, except excluded fstypes and mount points. A
// mount whose statfs fails reports only node_filesystem_device_error 1.
func (c *Collector) collectFilesystems(time.Time) error {
	mounts, err := c.proc.GetMounts()
	if err != nil {
		return err
	}
	clear(c.seen)
	for _, m := range mounts {
		if c.fsTypeExcluded[m.FSType] {
			continue
		}
		mountpoint := unescapeMount(m.MountPoint)
		if c.mountExclude != nil && c.mountExclude.MatchString(mountpoint) {
			continue
		}
		device := labelValue(unescapeMount(m.Source))
		fstype := labelValue(m.FSType)
		// The same filesystem is often mounted twice at one place (bind
		// mounts, namespaces); the label set must stay unique.
		key := device + "\x00" + mountpoint + "\x00" + fstype
		if _, dup := c.seen[key]; dup {
			continue
		}
		c.seen[key] = struct{}{}
		labels := [...]string{"device", device, "fstype", fstype, "mountpoint", labelValue(mountpoint)}

		var st unix.Statfs_t
		if err := unix.Statfs(mountpoint, &st); err != nil {
			c.b.add("node_filesystem_device_error", 1, labels[:]...)
			continue
		}
		_, ro := m.Options["ro"]
		if _, superRO := m.SuperOptions["ro"]; superRO || st.Flags&unix.ST_RDONLY != 0 {
			ro = true
		}
		bsize := float64(st.Bsize)
		c.b.add("node_filesystem_size_bytes", float64(st.Blocks)*bsize, labels[:]...)
		c.b.add("node_filesystem_free_bytes", float64(st.Bfree)*bsize, labels[:]...)
		c.b.add("node_filesystem_avail_bytes", float64(st.Bavail)*bsize, labels[:]...)
		c.b.add("node_filesystem_files", float64(st.Files), labels[:]...)
		c.b.add("node_filesystem_files_free", float64(st.Ffree), labels[:]...)
		c.b.add("node_filesystem_readonly", boolValue(ro), labels[:]...)
		c.b.add("node_filesystem_device_error", 0, labels[:]...)
	}
	return nil
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// collectNetdev reports /proc/net/dev per interface, except interfaces
// matching NetworkDevicesExclude. It parses the file itself: procfs'
// parser indexes fields without checking how many there are.
func (c *Collector) collectNetdev(time.Time) error {
	data, err := c.readFile(c.procFile("net/dev"))
	if err != nil {
		return err
	}
	clear(c.seen)
	for n := 1; len(data) > 0; n++ {
		var line []byte
		line, data = nextLine(data)
		if n <= 2 || len(bytes.TrimSpace(line)) == 0 { // two header lines
			continue
		}
		colon := bytes.LastIndexByte(line, ':')
		if colon < 0 {
			return fmt.Errorf("line %d: no \"interface:\" in %q", n, truncate(line))
		}
		name := bytes.TrimSpace(line[:colon])
		c.fields = splitFields(c.fields, line[colon+1:])
		if len(name) == 0 || len(c.fields) < 16 {
			return fmt.Errorf("line %d: want \"interface: 16 counters\", got %q", n, truncate(line))
		}
		dev := labelValue(c.intern(name))
		if c.netExclude != nil && c.netExclude.MatchString(dev) {
			continue
		}
		if _, dup := c.seen[dev]; dup {
			return fmt.Errorf("line %d: interface %q appears twice", n, dev)
		}
		c.seen[dev] = struct{}{}
		var v [16]float64
		for i := range v {
			if v[i], err = parseInt(c.fields[i]); err != nil {
				return fmt.Errorf("line %d: %w", n, err)
			}
		}
		c.b.add("node_network_receive_bytes_total", v[0], "device", dev)
		c.b.add("node_network_receive_packets_total", v[1], "device", dev)
		c.b.add("node_network_receive_errs_total", v[2], "device", dev)
		c.b.add("node_network_receive_drop_total", v[3], "device", dev)
		c.b.add("node_network_transmit_bytes_total", v[8], "device", dev)
		c.b.add("node_network_transmit_packets_total", v[9], "device", dev)
		c.b.add("node_network_transmit_errs_total", v[10], "device", dev)
		c.b.add("node_network_transmit_drop_total", v[11], "device", dev)
	}
	return nil
}
