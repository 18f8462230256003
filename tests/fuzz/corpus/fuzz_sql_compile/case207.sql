SET @dev = device_id
SELECT * FROM 'device/data'