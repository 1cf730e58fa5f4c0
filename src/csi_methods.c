/* The CSI v1 method table (csi_methods.h). */
#include "csi_methods.h"

#include <string.h>

#include "csi.pb-c.h"

#define READ_ONLY(msg) &csi__v1__##msg##_request__descriptor, &csi__v1__##msg##_response__descriptor
#define OTHER          NULL, NULL

static const struct csi_method methods[] = {
        /* Identity */
        {"GetPluginInfo", "/csi.v1.Identity/GetPluginInfo", "get_plugin_info",
         READ_ONLY(get_plugin_info), true},
        {"GetPluginCapabilities", "/csi.v1.Identity/GetPluginCapabilities",
         "get_plugin_capabilities", READ_ONLY(get_plugin_capabilities), true},
        {"Probe", "/csi.v1.Identity/Probe", "probe", READ_ONLY(probe), false},
        /* Controller */
        {"CreateVolume", "/csi.v1.Controller/CreateVolume", "create_volume", OTHER, false},
        {"DeleteVolume", "/csi.v1.Controller/DeleteVolume", "delete_volume", OTHER, false},
        {"ControllerPublishVolume", "/csi.v1.Controller/ControllerPublishVolume",
         "controller_publish_volume", OTHER, false},
        {"ControllerUnpublishVolume", "/csi.v1.Controller/ControllerUnpublishVolume",
         "controller_unpublish_volume", OTHER, false},
        {"ValidateVolumeCapabilities", "/csi.v1.Controller/ValidateVolumeCapabilities",
         "validate_volume_capabilities", OTHER, false},
        {"ListVolumes", "/csi.v1.Controller/ListVolumes", "list_volumes", OTHER, false},
        {"GetCapacity", "/csi.v1.Controller/GetCapacity", "get_capacity", OTHER, false},
        {"ControllerGetCapabilities", "/csi.v1.Controller/ControllerGetCapabilities",
         "controller_get_capabilities", READ_ONLY(controller_get_capabilities), true},
        {"CreateSnapshot", "/csi.v1.Controller/CreateSnapshot", "create_snapshot", OTHER, false},
        {"DeleteSnapshot", "/csi.v1.Controller/DeleteSnapshot", "delete_snapshot", OTHER, false},
        {"ListSnapshots", "/csi.v1.Controller/ListSnapshots", "list_snapshots", OTHER, false},
        {"GetSnapshot", "/csi.v1.Controller/GetSnapshot", "get_snapshot", OTHER, false},
        {"ControllerExpandVolume", "/csi.v1.Controller/ControllerExpandVolume",
         "controller_expand_volume", OTHER, false},
        {"ControllerGetVolume", "/csi.v1.Controller/ControllerGetVolume", "controller_get_volume",
         OTHER, false},
        {"ControllerModifyVolume", "/csi.v1.Controller/ControllerModifyVolume",
         "controller_modify_volume", OTHER, false},
        /* GroupController */
        {"GroupControllerGetCapabilities", "/csi.v1.GroupController/GroupControllerGetCapabilities",
         "group_controller_get_capabilities", OTHER, false},
        {"CreateVolumeGroupSnapshot", "/csi.v1.GroupController/CreateVolumeGroupSnapshot",
         "create_volume_group_snapshot", OTHER, false},
        {"DeleteVolumeGroupSnapshot", "/csi.v1.GroupController/DeleteVolumeGroupSnapshot",
         "delete_volume_group_snapshot", OTHER, false},
        {"GetVolumeGroupSnapshot", "/csi.v1.GroupController/GetVolumeGroupSnapshot",
         "get_volume_group_snapshot", OTHER, false},
        /* Node */
        {"NodeStageVolume", "/csi.v1.Node/NodeStageVolume", "node_stage_volume", OTHER, false},
        {"NodeUnstageVolume", "/csi.v1.Node/NodeUnstageVolume", "node_unstage_volume", OTHER,
         false},
        {"NodePublishVolume", "/csi.v1.Node/NodePublishVolume", "node_publish_volume", OTHER,
         false},
        {"NodeUnpublishVolume", "/csi.v1.Node/NodeUnpublishVolume", "node_unpublish_volume", OTHER,
         false},
        {"NodeGetVolumeStats", "/csi.v1.Node/NodeGetVolumeStats", "node_get_volume_stats", OTHER,
         false},
        {"NodeExpandVolume", "/csi.v1.Node/NodeExpandVolume", "node_expand_volume", OTHER, false},
        {"NodeGetCapabilities", "/csi.v1.Node/NodeGetCapabilities", "node_get_capabilities",
         READ_ONLY(node_get_capabilities), true},
        {"NodeGetInfo", "/csi.v1.Node/NodeGetInfo", "node_get_info", READ_ONLY(node_get_info),
         true},
};

#define COUNT (sizeof(methods) / sizeof(methods[0]))

size_t csi_method_count(void)
{
	return COUNT;
}

const struct csi_method *csi_method_at(size_t i)
{
	return i < COUNT ? &methods[i] : NULL;
}

const struct csi_method *csi_method_by_name(const char *name)
{
	for (size_t i = 0; i < COUNT; i++)
		if (strcmp(methods[i].name, name) == 0)
			return &methods[i];
	return NULL;
}

const struct csi_method *csi_method_by_path(const char *path, size_t len)
{
	for (size_t i = 0; i < COUNT; i++)
		if (strlen(methods[i].path) == len && memcmp(methods[i].path, path, len) == 0)
			return &methods[i];
	return NULL;
}

const char *csi_callable_methods(void)
{
	return "GetPluginInfo, GetPluginCapabilities, NodeGetInfo, NodeGetCapabilities, "
	       "ControllerGetCapabilities";
}
